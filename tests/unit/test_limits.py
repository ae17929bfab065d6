"""Resource limits in-process: the longest answer, CORS closed by default and open to the
configured origins."""

from __future__ import annotations

from ..conftest import AppClient
from ..fakes import FakeLLM, FakeTTS, fake_providers, make_wav

URL = "/api/orchestrator/dialogue"
WAV = {"content-type": "audio/wav", "accept": "application/json"}


async def test_a_very_long_answer_is_cut_at_the_maximum_output(app_client: AppClient) -> None:
    sentences = [f"This is sentence number {i} of a reply that goes on. " for i in range(40)]
    llm = FakeLLM(sentences, token_s=0.001)
    tts = FakeTTS(seconds_per_char=0.02)  # about one second a sentence
    async with app_client(fake_providers(llm=llm, tts=tts), max_output_s=2.5) as client:
        response = await client.post(URL, content=make_wav(1.0), headers=WAV)
    assert response.status_code == 200, response.text
    body = response.json()
    assert 2.5 <= body["output"]["duration_s"] < 2.5 + 1.2
    assert body["response_text"] == " ".join(s.strip() for s in sentences[:3])
    assert llm.stream_closed
    assert llm.tokens_sent < len(sentences)


async def test_an_answer_within_the_maximum_is_whole(app_client: AppClient) -> None:
    async with app_client(max_output_s=60) as client:
        response = await client.post(URL, content=make_wav(1.0), headers=WAV)
    assert response.json()["response_text"] == "The capital of France is Paris. It is big."


async def test_cors_is_closed_by_default(app_client: AppClient) -> None:
    async with app_client() as client:
        response = await client.get("/health", headers={"origin": "https://app.example"})
        preflight = await client.options(
            URL,
            headers={"origin": "https://app.example", "access-control-request-method": "POST"},
        )
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-origin" not in preflight.headers


async def test_cors_opens_to_configured_origins_only(app_client: AppClient) -> None:
    allowed = "https://app.example"
    async with app_client(cors_origins=f"{allowed}, https://other.example", api_keys="k") as c:
        preflight = await c.options(
            URL,
            headers={
                "origin": allowed,
                "access-control-request-method": "POST",
                "access-control-request-headers": "x-api-key, content-type",
            },
        )
        answer = await c.post(
            URL, content=make_wav(1.0), headers={**WAV, "origin": allowed, "x-api-key": "k"}
        )
        refused = await c.options(
            URL,
            headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
        )
    assert preflight.status_code == 200  # a preflight needs no key
    assert preflight.headers["access-control-allow-origin"] == allowed
    assert answer.headers["access-control-allow-origin"] == allowed
    exposed = answer.headers["access-control-expose-headers"].lower()
    assert "x-time-to-first-audio" in exposed
    assert "x-request-id" in exposed
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
