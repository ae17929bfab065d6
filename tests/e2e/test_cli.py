"""The command line against a real server with scripted fakes."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
import soundfile as sf

from voice_orchestrator.cli import main

from ..fakes import FakeSTT, fake_providers, make_wav
from .conftest import ServerFactory


async def test_dialogue_against_a_server(
    live_server: ServerFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    question = tmp_path / "q.wav"
    question.write_bytes(make_wav(1.0))
    answer = tmp_path / "a.wav"
    async with live_server() as server:
        code = await asyncio.to_thread(
            main, ["dialogue", str(question), "-o", str(answer), "--url", server.url,
                   "--session", "cli-1"]
        )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "What is the capital of France?" in out
    assert "The capital of France is Paris." in out
    assert "total" in out
    _, rate = sf.read(io.BytesIO(answer.read_bytes()))
    assert rate == 22_050


async def test_dialogue_error_goes_to_stderr(
    live_server: ServerFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    question = tmp_path / "q.wav"
    question.write_bytes(make_wav(1.0))
    async with live_server(fake_providers(stt=FakeSTT(""))) as server:
        code = await asyncio.to_thread(
            main, ["dialogue", str(question), "-o", str(tmp_path / "a.wav"), "--url", server.url]
        )
    assert code == 1
    captured = capsys.readouterr()
    assert "SPEECH_RECOGNITION_FAILED" in captured.err
    assert captured.out == ""
    assert not (tmp_path / "a.wav").exists()


def test_missing_input_and_unreachable_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dialogue", str(tmp_path / "none.wav"), "-o", str(tmp_path / "a.wav")]) == 1
    assert "cannot read" in capsys.readouterr().err
    question = tmp_path / "q.wav"
    question.write_bytes(make_wav(1.0))
    code = main(["dialogue", str(question), "-o", "x.wav", "--url", "http://127.0.0.1:9"])
    assert code == 1
    assert "could not reach" in capsys.readouterr().err


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("serve", "dialogue", "status"):
        assert command in out
