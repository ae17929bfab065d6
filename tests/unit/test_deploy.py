"""The deployment files agree with the service and with each other: probe paths and ports,
the drain and the grace periods, the Redis stores, nginx's upstreams and WebSocket upgrade, and
the Dockerfile's llama.cpp build flags and install commands against the Makefile's."""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest
import yaml

from voice_orchestrator.settings import Settings

from ..conftest import REPO, AppClient, make_settings

DEPLOY = REPO / "deploy"
PORT = 8000


def load_all(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc]


def by_kind(kind: str) -> dict[str, Any]:
    docs = [
        doc for name in ("deployment", "service", "hpa") for doc in load_all(f"k8s/{name}.yaml")
    ]
    (found,) = [doc for doc in docs if doc["kind"] == kind]
    return found


def drain_timeout() -> float:
    return Settings.model_fields["drain_timeout_s"].default  # type: ignore[no-any-return]


async def test_the_probed_liveness_route_answers(app_client: AppClient) -> None:
    async with app_client() as client:
        assert (await client.get("/health")).status_code == 200


def test_the_deployment_probes_ready_and_health_on_the_served_port() -> None:
    pod = by_kind("Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": PORT}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    env = {item["name"]: item["value"] for item in container["env"]}
    assert float(env["ORCH_DRAIN_TIMEOUT_S"]) == drain_timeout()
    assert env["ORCH_ADMISSION_STORE"].startswith("redis://")
    assert env["ORCH_SESSION_STORE"].startswith("redis://")
    make_settings(**{k.removeprefix("ORCH_").lower(): v for k, v in env.items() if "ORCH_" in k})
    # preStop pause, then the whole drain, before the kubelet kills the container.
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > int(pre_stop[1]) + drain_timeout()
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_the_service_and_autoscaler_point_at_the_deployment() -> None:
    deployment = by_kind("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = by_kind("Service")["spec"]
    assert service["selector"].items() <= labels.items()
    assert [port["targetPort"] for port in service["ports"]] == ["http"]
    target = by_kind("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])


def test_compose_runs_two_instances_on_one_redis_behind_nginx() -> None:
    (compose,) = load_all("compose.yaml")
    services = compose["services"]
    instances = {name: s for name, s in services.items() if name.startswith("orchestrator")}
    assert len(instances) == 2
    for service in instances.values():
        env = service["environment"]
        assert env["ORCH_ADMISSION_STORE"].startswith("redis://redis:")
        assert env["ORCH_SESSION_STORE"].startswith("redis://redis:")
        assert float(env["ORCH_DRAIN_TIMEOUT_S"]) == drain_timeout()
        assert int(service["stop_grace_period"].removesuffix("s")) > drain_timeout()
        probe = " ".join(service["healthcheck"]["test"])
        assert f"127.0.0.1:{PORT}/ready" in probe
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in services["nginx"]["volumes"]
    nginx = (DEPLOY / "nginx.conf").read_text()
    upstreams = set(re.findall(r"^\s*server\s+([\w.-]+):(\d+)", nginx, re.MULTILINE))
    assert upstreams == {(name, str(PORT)) for name in instances}
    assert "proxy_set_header Upgrade $http_upgrade;" in nginx
    assert "proxy_set_header Connection $connection_upgrade;" in nginx
    assert "proxy_http_version 1.1;" in nginx


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def makefile_cmake_args() -> list[str]:
    text = (REPO / "Makefile").read_text().replace("\\\n", " ")
    match = re.search(r"^export CMAKE_ARGS \?= (.+)$", text, re.MULTILINE)
    assert match is not None
    return match.group(1).split()


def test_the_dockerfile_builds_llama_cpp_like_the_makefile() -> None:
    instructions = dockerfile_instructions()
    env = " ".join(args for name, args in instructions if name == "ENV")
    match = re.search(r'CMAKE_ARGS="([^"]+)"', env)
    assert match is not None
    assert match.group(1).split() == makefile_cmake_args()


def test_the_dockerfile_installs_the_locked_dependencies_in_their_own_layer() -> None:
    instructions = dockerfile_instructions()
    runs = [(i, args) for i, (name, args) in enumerate(instructions) if name == "RUN"]
    syncs = [(i, shlex.split(args)) for i, args in runs if "uv sync" in args]
    make_sync = re.search(r"\$\(UV\) (sync [^\n]+)", (REPO / "Makefile").read_text())
    assert make_sync is not None
    make_flags = set(make_sync.group(1).split()[1:])
    assert make_flags == {"--locked"}
    for _, words in syncs:
        assert make_flags <= set(words)
    first, second = syncs
    assert "--no-install-project" in first[1]
    assert "--no-install-project" not in second[1]
    copies = {args: i for i, (name, args) in enumerate(instructions) if name == "COPY"}
    assert copies["pyproject.toml uv.lock ./"] < first[0] < copies["backend ./backend"] < second[0]


def test_the_image_serves_as_a_non_root_user_on_all_interfaces() -> None:
    instructions = dockerfile_instructions()
    stages = [i for i, (name, _) in enumerate(instructions) if name == "FROM"]
    assert len(stages) == 2  # build, then a runtime without compilers
    final = instructions[stages[-1] :]
    (user,) = [args for name, args in final if name == "USER"]
    assert user not in ("root", "0")
    (cmd,) = [args for name, args in final if name == "CMD"]
    command = yaml.safe_load(cmd)
    assert command[:2] == ["voice-orchestrator", "serve"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert command[command.index("--port") + 1] == str(PORT)
    assert ("EXPOSE", str(PORT)) in final


@pytest.mark.parametrize("name", ["compose.yaml", "k8s/deployment.yaml"])
def test_the_rate_limit_in_the_examples_is_valid(name: str) -> None:
    text = (DEPLOY / name).read_text()
    (rate,) = set(re.findall(r"(\d+/minute)", text))
    make_settings(rate_limit=rate)
