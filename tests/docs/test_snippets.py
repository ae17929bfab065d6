"""The README's and the quickstart's examples still work.

Every curl command and Python block runs against a real uvicorn over the in-process fakes
(``127.0.0.1:8000`` rewritten to its port) in a directory laid out like the repository; the
commands that need the real engines or an upstream (``make run``, the in-process CLI) are checked
instead: their files, flags, variables and make targets must exist. A stale example fails here.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
from starlette.routing import Match

from voice_orchestrator.api.errors import STATUS_BY_CODE
from voice_orchestrator.cli import _parser
from voice_orchestrator.main import create_app

from ..conftest import HANG_S, REPO, AppClient, make_settings
from ..e2e.conftest import serve
from ..fakes import fake_providers
from .snippets import (
    DOCS,
    Block,
    all_blocks,
    blocks,
    cli_arguments,
    commands,
    documented_variables,
    inline_code,
    make_targets,
    repository_paths,
    settings_variables,
    words,
)

LOCAL = re.compile(r"(?:localhost|127\.0\.0\.1):8000")
SHELL = ("bash", "sh", "shell")
# Phone calls: their settings and error codes exist before the routes that use them; the
# README documents them with those routes.
NOT_SERVED_YET: frozenset[str] = frozenset()
NOT_RAISED_YET: frozenset[str] = frozenset()
CLI_FORMS = ("voice-orchestrator ", "uv run voice-orchestrator ", "python -m voice_orchestrator ")


def shell_commands() -> list[tuple[str, str]]:
    return [
        (block.where, command)
        for block in all_blocks()
        if block.lang in SHELL
        for command in commands(block.text)
    ]


def runnable(command: str) -> bool:
    return words(command)[1][:1] == ["curl"]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The repository's folders linked into a fresh directory, so that the examples find
    ``tests/assets/question.wav`` and what they write lands outside the repository; curl fails
    on an HTTP error status there, and ``ffplay`` is a stand-in that drains its input."""
    root = tmp_path / "repo"
    root.mkdir()
    for entry in REPO.iterdir():
        if entry.is_dir() and entry.name not in {".git", ".venv"}:
            (root / entry.name).symlink_to(entry)
    (root / ".curlrc").write_text("fail-with-body\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ffplay = bin_dir / "ffplay"
    ffplay.write_text("#!/bin/sh\ncat > /dev/null\n")
    ffplay.chmod(0o755)
    return root


def written(workdir: Path) -> list[str]:
    """What the examples wrote into ``workdir``."""
    return [p.name for p in workdir.iterdir() if not p.is_symlink() and p.name != ".curlrc"]


async def run(argv: list[str], cwd: Path) -> tuple[int, str]:
    env = dict(os.environ)
    env.update(
        CURL_HOME=str(cwd),
        PATH=f"{cwd.parent / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(REPO / "backend"),
    )
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    async with asyncio.timeout(HANG_S):
        output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


CURL_BLOCKS = [
    (block.where, cmds)
    for block in all_blocks()
    if block.lang in SHELL and (cmds := [c for c in commands(block.text) if runnable(c)])
]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize(
    ("where", "block"), CURL_BLOCKS, ids=[f"{w}#{i}" for i, (w, _) in enumerate(CURL_BLOCKS)]
)
async def test_curl_examples_run(where: str, block: list[str], workdir: Path) -> None:
    """The curl commands of one block run in order against one server, as a reader would."""
    async with serve(create_app(make_settings(), fake_providers())) as server:
        local = server.url.removeprefix("http://")
        for command in block:
            assert LOCAL.search(command), f"{where}: a curl example not for the local service"
            code, output = await run(
                ["bash", "-o", "pipefail", "-c", LOCAL.sub(local, command)], workdir
            )
            assert code == 0, f"{where}: `{command}` exited with {code}:\n{output}"
    for name in written(workdir):
        ignored, _ = await run(["git", "check-ignore", "--no-index", "-q", name], REPO)
        assert ignored == 0, f"{where} writes {name}, which git would pick up"


@pytest.mark.parametrize(
    "block", [b for b in all_blocks() if b.lang == "python"], ids=lambda b: b.where
)
async def test_python_examples_run(block: Block, workdir: Path) -> None:
    script = workdir / f"example_{block.line}.py"
    async with serve(create_app(make_settings(), fake_providers())) as server:
        script.write_text(LOCAL.sub(server.url.removeprefix("http://"), block.text))
        code, output = await run([sys.executable, str(script)], workdir)
    assert code == 0, f"{block.where} exited with {code}:\n{output}"
    # The examples print each event's type first: none may be an error.
    assert not re.search(r"^error\b", output, re.MULTILINE), f"{block.where}:\n{output}"


def test_every_shell_command_is_run_or_checked() -> None:
    for where, command in shell_commands():
        _, tokens = words(command)
        known = runnable(command) or cli_arguments(tokens) is not None or tokens[:1] == ["make"]
        assert known, f"{where}: `{command}` is neither run nor checked here; teach this test"


def test_every_cli_invocation_parses() -> None:
    invocations = [(where, command) for where, command in shell_commands()]
    invocations += [
        (doc.name, span)
        for doc in DOCS
        for span in inline_code(doc)
        if span.startswith(CLI_FORMS) and "…" not in span
    ]
    checked = 0
    for where, command in invocations:
        arguments = cli_arguments(words(command)[1])
        if arguments is None:
            continue
        try:
            _parser().parse_args(arguments)
        except SystemExit:
            pytest.fail(f"{where}: `{command}` is refused by the command line")
        checked += 1
    assert checked


def test_the_command_line_synopsis_lists_every_option() -> None:
    [synopsis] = [b for b in blocks(DOCS[0]) if b.lang == "text" and "voice-orchestrator" in b.text]
    subcommands = _parser()._subparsers._group_actions[0].choices
    documented = {
        line.split()[1]: set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", line))
        for line in synopsis.text.splitlines()
    }
    assert set(documented) == set(subcommands)
    for name, parser in subcommands.items():
        options = [
            set(a.option_strings) for a in parser._actions if "--help" not in a.option_strings
        ]
        for strings in options:
            if strings:
                assert strings & documented[name], f"{name}: {sorted(strings)} undocumented"
        unknown = documented[name] - set().union(*options)
        assert not unknown, f"{name}: the synopsis names {sorted(unknown)}, which do not exist"


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_every_variable_named_exists(doc: Path) -> None:
    known = settings_variables()
    for name in documented_variables(doc.read_text()):
        if name.endswith(("_", "*", "…")):
            prefix = name.rstrip("_*…")
            assert any(k.startswith(prefix) for k in known), f"{doc.name}: {name}"
        else:
            assert name in known, f"{doc.name} names {name}, which Settings does not read"


def test_every_setting_is_documented() -> None:
    missing = settings_variables() - documented_variables(DOCS[0].read_text()) - NOT_SERVED_YET
    assert not missing, f"README.md does not document {sorted(missing)}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_every_path_named_exists(doc: Path) -> None:
    paths = repository_paths(doc.read_text())
    assert paths
    for path in paths:
        exists = any(REPO.glob(path)) if "*" in path else (REPO / path).exists()
        assert exists, f"{doc.name} names {path}, which does not exist"


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_every_make_target_named_exists(doc: Path) -> None:
    for target in re.findall(r"\bmake ([a-z][\w-]*)", doc.read_text()):
        assert target in make_targets(), f"{doc.name} names `make {target}`"


def test_every_route_named_exists() -> None:
    app = create_app(make_settings(), fake_providers())
    spans = [span for doc in DOCS for span in inline_code(doc)]
    paths = {m.group(1) for s in spans if (m := re.fullmatch(r"(?:[A-Z]+ )?(/[\w/.-]*)", s))}
    assert "/api/orchestrator/dialogue" in paths
    # `/api` names every route under it.
    prefixes = {p for p in paths if any(other.startswith(p + "/") for other in paths)}
    for path in paths - prefixes:
        scopes = [{"type": t, "path": path, "method": "GET", "root_path": "", "headers": []}
                  for t in ("http", "websocket")]  # fmt: skip
        matched = any(r.matches(s)[0] != Match.NONE for r in app.router.routes for s in scopes)
        assert matched, f"the docs name {path}, which the service does not serve"


def error_table() -> dict[str, int]:
    rows = re.findall(r"^\| (\d{3}) \| (.+?) \|", DOCS[0].read_text(), re.MULTILINE)
    return {code: int(status) for status, cell in rows for code in re.findall(r"`(\w+)`", cell)}


def test_the_error_table_matches_the_service() -> None:
    table = error_table()
    for code, status in STATUS_BY_CODE.items():
        if code in NOT_RAISED_YET:
            continue
        assert table.get(code) == status, f"README: {code} should be listed as {status}"


@pytest.mark.parametrize(("method", "path"), [("GET", "/no-such-route"), ("DELETE", "/health")])
async def test_the_error_table_lists_routing_errors(
    method: str, path: str, app_client: AppClient
) -> None:
    async with app_client() as client:
        response = await client.request(method, path)
    code = response.json()["error"]["code"]
    assert error_table().get(code) == response.status_code, f"README lacks {code}"
