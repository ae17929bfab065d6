"""``voice-orchestrator``: serve the API, run one spoken turn, or read the service status."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import unquote

import httpx2

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
        help="answer a spoken question: IN.wav -> OUT.wav",
        description="Sends IN (WAV, FLAC or OGG) through speech-to-text, the language model and "
        "text-to-speech, writes the spoken answer to OUT and prints transcript, answer and "
        "stage timings. Without --url the engines run in this process.",
    )
    dialogue.add_argument("input", type=Path, metavar="IN.wav", help="the spoken question")
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
    from .settings import Settings

    settings = Settings()
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


def _error_text(response: httpx2.Response) -> str:
    try:
        error = response.json()["error"]
        return f"{response.status_code} {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


async def _dialogue(args: argparse.Namespace) -> int:
    try:
        audio = args.input.read_bytes()
    except OSError as e:
        raise CliError(f"cannot read {args.input}: {e.strerror}") from e
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
    import uvicorn

    from .observability import configure_logging
    from .settings import Settings

    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    uvicorn.run(
        factory,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        ws_max_size=1 << 20,
        # The WebSocket carries raw PCM, which deflate shrinks by under a fifth while tripling
        # the server's CPU per frame (``python -m bench.ws_deflate``).
        ws_per_message_deflate=False,
    )


def _serve(args: argparse.Namespace) -> int:
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
        print(f"error: could not reach the server: {type(e).__name__}", file=sys.stderr)
        return 1
    except ValueError as e:  # configuration errors name the variable to fix
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
