"""``voice-orchestrator``: serve the API, run one spoken turn, or read the service status."""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

import httpx2
from pydantic import ValidationError

if TYPE_CHECKING:
    from .settings import Settings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DIALOGUE_PATH = "/api/orchestrator/dialogue"
STATUS_PATH = "/api/orchestrator/status"
TIMING_HEADERS = (
    ("stt", "x-processing-time-stt"),
    ("llm", "x-processing-time-llm"),
    ("tts", "x-processing-time-tts"),
    ("first audio", "x-time-to-first-audio"),
    ("total", "x-processing-time-total"),
)
INPUT_FORMATS = "WAV, FLAC, OGG (Vorbis or Opus), MP3, M4A/AAC or WebM/Opus"


class CliError(Exception):
    """A failure to report on stderr with a non-zero exit code."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voice-orchestrator",
        description="Spoken question in, spoken answer out. Configuration comes from ORCH_* "
        "environment variables (see the README); with none set, embedded offline engines run.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve the HTTP and WebSocket API")
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"address (default {DEFAULT_HOST})")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default 8000)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")

    dialogue = commands.add_parser(
        "dialogue",
        help="answer a spoken question: IN -> OUT.wav",
        description=f"Sends IN ({INPUT_FORMATS}) through speech-to-text, the language model "
        "and text-to-speech, writes the spoken answer to OUT.wav and prints transcript, answer "
        "and stage timings. Without --url the engines run in this process.",
    )
    dialogue.add_argument(
        "input", type=Path, metavar="IN", help=f"the spoken question ({INPUT_FORMATS})"
    )
    dialogue.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.wav")
    dialogue.add_argument("--url", help="a running server, e.g. http://127.0.0.1:8000")
    dialogue.add_argument("--session", metavar="ID", help="session id to continue a conversation")
    dialogue.add_argument("--api-key", help="API key when the server requires one")

    status = commands.add_parser("status", help="print the health of the three stages")
    status.add_argument("--url", help="a running server (default: check in this process)")
    status.add_argument("--api-key", help="API key when the server requires one")
    return parser


@asynccontextmanager
async def _client(url: str | None, api_key: str | None) -> AsyncIterator[httpx2.AsyncClient]:
    headers = {"X-API-Key": api_key} if api_key else {}
    timeout = httpx2.Timeout(300.0, connect=10.0)
    if url:
        async with httpx2.AsyncClient(base_url=url, headers=headers, timeout=timeout) as client:
            yield client
        return
    from .main import create_app
    from .observability import configure_logging

    settings = _settings()
    # A command-line run shows its own progress; service logs only when asked for.
    level = settings.log_level if "ORCH_LOG_LEVEL" in os.environ else "WARNING"
    configure_logging("text", level)
    print("Loading the engines (a few seconds)...", file=sys.stderr, flush=True)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        print("Engines ready.", file=sys.stderr, flush=True)
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(
            transport=transport, base_url="http://in-process", headers=headers, timeout=timeout
        ) as client:
            yield client


def _settings() -> Settings:
    from .settings import Settings

    return Settings()


def _check_url(url: str | None) -> None:
    if url is not None and not url.lower().startswith(("http://", "https://")):
        raise CliError(
            f"--url {url!r} needs http:// or https:// in front, e.g. http://127.0.0.1:8000"
        )


def _check_output(output: Path) -> None:
    """Refuses an output that cannot be written before any work is done for it."""
    folder = output.parent
    if not folder.is_dir():
        raise CliError(f"cannot write {output}: the folder {folder} does not exist")
    if output.is_dir():
        raise CliError(f"cannot write {output}: it is a folder")
    if not os.access(folder, os.W_OK):
        raise CliError(f"cannot write {output}: the folder {folder} is not writable")


def _check_audio(name: Path, data: bytes, settings: Settings) -> None:
    """Decodes the question as the service would, so that a file that is not audio is refused
    before the engines load."""
    from .audio import decode
    from .errors import OrchestratorError

    try:
        decode(data, min_s=settings.min_audio_s, max_s=settings.max_audio_s, target_rate=None)
    except OrchestratorError as e:
        raise CliError(f"{name}: {e.code}: {e.message} (inputs: {INPUT_FORMATS})") from e


def _check_port(host: str, port: int) -> None:
    """Binds the address the server will listen on, so that a busy port is reported before
    the engines load."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as e:
        raise CliError(f"cannot resolve --host {host}: {e.strerror}") from e
    with socket.socket(family, kind, proto) as sock:
        # As uvicorn does, so that connections in TIME_WAIT do not count as a busy port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise CliError(
                    f"port {port} on {host} is already in use (is the service already "
                    "running?); stop that process or choose another port with --port"
                ) from e
            raise CliError(f"cannot listen on {host}:{port}: {e.strerror}") from e


def _unreachable(url: str | None, error: httpx2.HTTPError) -> str:
    if isinstance(error, httpx2.ConnectError):
        return (
            f"could not reach the server at {url} (connection refused or no such host). "
            "Start it with `make run` (or `voice-orchestrator serve`), or leave out --url to "
            "run the engines in this process"
        )
    if isinstance(error, httpx2.TimeoutException):
        return f"the server at {url} did not answer in time ({type(error).__name__})"
    return f"could not reach the server at {url}: {type(error).__name__}"


def _config_errors(error: ValidationError) -> list[str]:
    """One line per invalid setting, naming its variable, without pydantic's decoration."""
    lines = []
    for item in error.errors():
        message = str(item["msg"]).removeprefix("Value error, ")
        loc = [str(part) for part in item["loc"]]
        if loc and not message.startswith(("ORCH_", "OPENAI_")):
            name = loc[0] if loc[0].isupper() else "ORCH_" + "__".join(loc).upper()
            message = f"{name}: {message}"
        lines.append(message)
    return lines


def _error_text(response: httpx2.Response) -> str:
    try:
        error = response.json()["error"]
        return f"{response.status_code} {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


async def _dialogue(args: argparse.Namespace) -> int:
    _check_url(args.url)
    try:
        audio = args.input.read_bytes()
    except OSError as e:
        raise CliError(f"cannot read {args.input}: {e.strerror}") from e
    _check_output(args.output)
    if args.url is None:
        _check_audio(args.input, audio, _settings())
    data = {"session_id": args.session} if args.session else {}
    async with _client(args.url, args.api_key) as client:
        response = await client.post(
            DIALOGUE_PATH, files={"audio": (args.input.name, audio, "audio/wav")}, data=data
        )
    if response.status_code != 200:
        raise CliError(_error_text(response))
    try:
        args.output.write_bytes(response.content)
    except OSError as e:
        raise CliError(f"cannot write {args.output}: {e.strerror}") from e
    headers = response.headers
    print(f"You said:  {unquote(headers.get('x-transcript', ''))}")
    print(f"Answer:    {unquote(headers.get('x-response-text', ''))}")
    timings = ", ".join(f"{name} {headers[h]} ms" for name, h in TIMING_HEADERS if h in headers)
    print(f"Timings:   {timings}")
    print(f"Wrote {args.output} ({headers.get('x-output-duration', '?')} s)")
    return 0


async def _status(args: argparse.Namespace) -> int:
    _check_url(args.url)
    async with _client(args.url, args.api_key) as client:
        response = await client.get(STATUS_PATH)
    if response.status_code not in (200, 503):
        raise CliError(_error_text(response))
    print(json.dumps(response.json(), indent=2))
    return 0 if response.status_code == 200 else 1


def serve(factory: str, *, host: str, port: int, workers: int) -> None:
    """Serves the app that ``factory`` (``module:function``) builds, with logging from the
    environment. The benchmarks serve their app through this too, so they measure these
    options."""
    from .observability import configure_logging
    from .server import run, server_config
    from .settings import Settings

    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    run(server_config(factory, settings, host=host, port=port, workers=workers, factory=True))


def _serve(args: argparse.Namespace) -> int:
    _settings()  # a misconfiguration is reported before anything else
    _check_port(args.host, args.port)
    serve(
        "voice_orchestrator.main:app_from_env", host=args.host, port=args.port, workers=args.workers
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "dialogue":
            return asyncio.run(_dialogue(args))
        return asyncio.run(_status(args))
    except CliError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except httpx2.HTTPError as e:
        print(f"error: {_unreachable(getattr(args, 'url', None), e)}", file=sys.stderr)
        return 1
    except ValidationError as e:
        for line in _config_errors(e):
            print(f"error: {line}", file=sys.stderr)
        return 2
    except ValueError as e:  # configuration errors name the variable to fix
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
