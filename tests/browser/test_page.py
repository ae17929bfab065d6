"""The page in a real headless Chromium (Debian's) against a real uvicorn with scripted fakes:
a fake microphone speaks a question from a file, the answer plays, and the question heard again
barges in."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from playwright.async_api import Browser, Page, Playwright, async_playwright

from voice_orchestrator.audio import Audio, decode
from voice_orchestrator.main import create_app

from ..conftest import HANG_S, REPO, make_settings
from ..e2e.conftest import LiveServer, serve
from ..fakes import FakeLLM, FakeSTT, FakeTTS, fake_providers, make_wav

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian chromium is not installed (make browser-deps)"
)


def microphone_file(path: Path) -> Path:
    """The question, a pause long enough to end the turn, and the question again while the
    answer is still playing: Chromium loops this file as its fake microphone."""
    question = decode(
        (REPO / "tests" / "assets" / "question.wav").read_bytes(),
        min_s=0.1, max_s=60, target_rate=48_000,
    ).audio  # fmt: skip
    silence = Audio(bytes(48_000 * 2), 48_000)  # 1 s
    parts = [silence, question, silence, silence, question, *[silence] * 8]
    samples = np.frombuffer(b"".join(p.pcm for p in parts), dtype=np.int16)
    sf.write(path, samples, 48_000, subtype="PCM_16")
    return path


# Without the background-networking flags Chromium keeps dialling out of a closed network.
FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
]  # fmt: skip


async def launch(playwright: Playwright, mic: Path) -> Browser:
    return await playwright.chromium.launch(
        executable_path=CHROMIUM, args=[*FLAGS, f"--use-file-for-fake-audio-capture={mic}"]
    )


@pytest.fixture
async def server() -> AsyncIterator[LiveServer]:
    providers = fake_providers(
        stt=FakeSTT("What is the capital of France?"),
        llm=FakeLLM(["Paris is the capital of France. ", "It is a large city on the Seine."]),
        tts=FakeTTS(seconds_per_char=0.12),  # about 8 s of answer: long enough to talk over
    )
    async with serve(create_app(make_settings(), providers)) as live:
        yield live


async def open_page(browser: Browser, url: str) -> Page:
    page = await browser.new_page()
    page.set_default_timeout(HANG_S * 1000)  # every wait below is a hang guard, in ms
    await page.goto(url)
    return page


async def test_talk_upload_and_status_in_a_real_browser(server: LiveServer, tmp_path: Path) -> None:
    mic = microphone_file(tmp_path / "mic.wav")
    async with async_playwright() as p:
        browser = await launch(p, mic)
        try:
            page = await open_page(browser, server.url + "/")
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))

            # Status: each stage's health.
            await page.wait_for_function(
                "() => document.querySelectorAll('#services tr').length === 3"
            )
            assert await page.locator("#overall").text_content() == "healthy"

            # Upload: a recording sent to the REST endpoint, answer and waterfall shown.
            upload = tmp_path / "question.wav"
            upload.write_bytes(make_wav(1.5))
            await page.set_input_files("#file", str(upload))
            await page.wait_for_selector("#upload-result:not([hidden])")
            assert await page.locator("#upload-transcript").text_content() == (
                "What is the capital of France?"
            )
            assert await page.locator("#upload-waterfall .bar").count() >= 5

            # Talk: the fake microphone asks; the answer plays; the second question barges in.
            await page.click("#mic")
            await page.wait_for_selector("#transcript li.user")
            said = await page.locator("#transcript li.user").first.text_content()
            assert "capital" in (said or "")
            await page.wait_for_function("() => window.voDebug.scheduledBuffers > 0")
            await page.wait_for_function(
                "() => window.voDebug.events.includes('response.interrupted')"
            )
            await page.wait_for_function("() => window.voDebug.stoppedBuffers > 0")
            await page.wait_for_selector("#transcript .cut")
            await page.wait_for_selector("#talk-waterfall .bar")
            session_id = await page.locator("#session-id").text_content()
            assert session_id
            assert len(session_id) >= 22  # 128 random bits
            # The barge-in paused the playback at the voice's onset before it cut the answer.
            assert await page.evaluate("() => window.voDebug.pauses") >= 1
            # Chromium plays Opus, so the upload asked for it.
            assert await page.evaluate("() => window.voDebug.uploadFormat") == "opus"
            # "Forget this conversation" erases the history on the server.
            sessions = server.app.state.services.sessions
            assert await sessions.info(session_id) is not None
            await page.click("#forget")
            await page.wait_for_function("() => window.voDebug.forgotten !== undefined")
            assert await sessions.info(session_id) is None
            assert await page.locator("#transcript li").count() == 0
            await page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
            assert not errors
        finally:
            await browser.close()


async def test_keys_and_errors_are_shown(tmp_path: Path) -> None:
    mic = microphone_file(tmp_path / "mic.wav")
    app = create_app(make_settings(api_keys="right-key"), fake_providers())
    async with serve(app) as live, async_playwright() as p:
        browser = await launch(p, mic)
        try:
            page = await open_page(browser, live.url + "/")
            # Without a key the status call is refused, and the page says so.
            await page.wait_for_selector("#errors .error")
            shown = await page.locator("#errors .error").first.text_content()
            assert "UNAUTHORIZED" in (shown or "")
            await page.fill("#key", "right-key")
            await page.dispatch_event("#key", "change")
            upload = tmp_path / "q.wav"
            upload.write_bytes(make_wav(1.0))
            await page.set_input_files("#file", str(upload))
            await page.wait_for_selector("#upload-result:not([hidden])")
            # A file that is not audio: the error body is shown, not swallowed.
            bad = tmp_path / "bad.wav"
            bad.write_bytes(b"not audio at all" * 10)
            before = await page.locator("#errors .error").count()
            await page.set_input_files("#file", str(bad))
            await page.wait_for_function(
                f"() => document.querySelectorAll('#errors .error').length > {before}"
            )
            assert "INVALID_AUDIO_FORMAT" in (
                await page.locator("#errors .error").first.text_content() or ""
            )
        finally:
            await browser.close()
