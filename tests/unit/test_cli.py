"""What the command line says when something is wrong, and that it says it before any engine
loads or any turn runs."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import voice_orchestrator.main
from voice_orchestrator.cli import main

from ..fakes import make_wav


@pytest.fixture
def no_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to build the app (and load the engines) fails the test."""

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("the engines were loaded")

    monkeypatch.setattr(voice_orchestrator.main, "create_app", refuse)
    monkeypatch.setattr("uvicorn.run", refuse)


@pytest.fixture
def question(tmp_path: Path) -> Path:
    path = tmp_path / "q.wav"
    path.write_bytes(make_wav(1.0))
    return path


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that is bound but not listening: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def error_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


@pytest.mark.usefixtures("no_engines")
def test_a_server_that_is_down_is_named_with_what_to_do(
    question: Path, closed_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    assert main(["dialogue", str(question), "-o", "a.wav", "--url", url]) == 1
    [line] = error_lines(capsys)
    assert url in line
    assert "make run" in line
    assert "ConnectError" not in line
    assert main(["status", "--url", url]) == 1
    assert url in capsys.readouterr().err


@pytest.mark.usefixtures("no_engines")
@pytest.mark.parametrize("url", ["127.0.0.1:8000", "localhost:8000", "ftp://127.0.0.1"])
def test_a_url_without_http_scheme_says_so(
    url: str, question: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dialogue", str(question), "-o", "a.wav", "--url", url]) == 1
    [line] = error_lines(capsys)
    assert "http:// or https://" in line
    assert "UnsupportedProtocol" not in line
    assert main(["status", "--url", url]) == 1
    assert "http:// or https://" in capsys.readouterr().err


@pytest.mark.usefixtures("no_engines")
def test_a_missing_output_folder_is_reported_before_the_turn(
    question: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "missing" / "a.wav"
    assert main(["dialogue", str(question), "-o", str(output)]) == 1
    [line] = error_lines(capsys)
    assert "does not exist" in line
    assert str(tmp_path / "missing") in line


@pytest.mark.usefixtures("no_engines")
def test_an_output_that_is_a_folder_is_refused(
    question: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dialogue", str(question), "-o", str(tmp_path)]) == 1
    assert "is a folder" in capsys.readouterr().err


@pytest.mark.usefixtures("no_engines")
@pytest.mark.parametrize(
    ("content", "code"),
    [(b"just some text, not audio", "INVALID_AUDIO_FORMAT"), (make_wav(0.1), "AUDIO_TOO_SHORT")],
)
def test_a_file_that_is_not_usable_audio_is_refused_before_the_engines_load(
    content: bytes, code: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    assert main(["dialogue", str(path), "-o", str(tmp_path / "a.wav")]) == 1
    [line] = error_lines(capsys)
    assert code in line
    assert str(path) in line
    assert "MP3" in line  # says what is accepted
    assert not (tmp_path / "a.wav").exists()


@pytest.mark.usefixtures("no_engines")
@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"ORCH_STT__PROVIDER": "openai", "OPENAI_API_KEY": ""}, "ORCH_STT__API_KEY"),
        ({"ORCH_MAX_CONCURRENCY": "many"}, "ORCH_MAX_CONCURRENCY"),
        ({"ORCH_STT__BEAM_SIZE": "0"}, "ORCH_STT__BEAM_SIZE"),
        ({"ORCH_STT__LANGUAGE": "zz"}, "ORCH_STT__LANGUAGE"),
    ],
)
@pytest.mark.parametrize("command", [["status"], ["serve", "--port", "0"]])
def test_a_misconfiguration_is_one_line_naming_the_variable(
    env: dict[str, str],
    variable: str,
    command: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(command) == 2
    [line] = error_lines(capsys)
    assert line.startswith("error: ")
    assert variable in line
    assert "validation error" not in line
    assert "pydantic" not in line


@pytest.mark.usefixtures("no_engines")
def test_a_busy_port_is_reported_before_the_engines_load(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--host", "127.0.0.1", "--port", str(port)]) == 1
    [line] = error_lines(capsys)
    assert f"port {port}" in line
    assert "already in use" in line
    assert "--port" in line


def test_help_names_every_accepted_input_format(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["dialogue", "--help"])
    out = capsys.readouterr().out
    for name in ("WAV", "FLAC", "OGG", "MP3", "M4A", "WebM", "--api-key"):
        assert name in out
