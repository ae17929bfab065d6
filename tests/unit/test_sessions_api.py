"""The sessions resource, and sessions owned by the API key that made them."""

from __future__ import annotations

from datetime import datetime

from ..conftest import AppClient
from ..fakes import FakeLLM, fake_providers, make_wav

URL = "/api/orchestrator/sessions"
DIALOGUE = "/api/orchestrator/dialogue"


async def test_create_read_and_forget_a_session(app_client: AppClient) -> None:
    async with app_client() as client:
        created = await client.post(URL)
        assert created.status_code == 201
        session_id = created.json()["session_id"]
        assert len(session_id) >= 22  # 128 random bits, URL-safe
        datetime.fromisoformat(created.json()["created_at"])
        empty = await client.get(f"{URL}/{session_id}")
        assert empty.status_code == 200
        assert empty.json()["turns"] == []
        turn = await client.post(
            DIALOGUE, params={"session_id": session_id}, content=make_wav(1.0, 16_000),
            headers={"content-type": "audio/wav"},
        )  # fmt: skip
        assert turn.status_code == 200
        body = (await client.get(f"{URL}/{session_id}")).json()
        assert [t["user"] for t in body["turns"]] == ["What is the capital of France?"]
        assert body["turns"][0]["interrupted"] is False
        assert datetime.fromisoformat(body["expires_at"]) > datetime.fromisoformat(
            body["turns"][0]["at"]
        )
        assert (await client.delete(f"{URL}/{session_id}")).status_code == 204
        gone = await client.get(f"{URL}/{session_id}")
        assert gone.status_code == 404
        assert gone.json()["error"]["code"] == "SESSION_NOT_FOUND"
        again = await client.delete(f"{URL}/{session_id}")
        assert again.status_code == 404


async def test_a_chosen_id_and_a_bad_one(app_client: AppClient) -> None:
    async with app_client() as client:
        created = await client.post(URL, json={"session_id": "alice-1"})
        assert created.json()["session_id"] == "alice-1"
        bad = await client.post(URL, json={"session_id": "no spaces"})
        assert bad.status_code == 400
        assert bad.json()["error"]["code"] == "INVALID_REQUEST"
        assert (await client.get(f"{URL}/no%20spaces")).status_code == 400


async def test_another_key_never_sees_or_resumes_the_owners_session(
    app_client: AppClient,
) -> None:
    llm = FakeLLM()
    alice = {"authorization": "Bearer key-alice", "content-type": "audio/wav"}
    mallory = {"x-api-key": "key-mallory", "content-type": "audio/wav"}
    wav = make_wav(1.0, 16_000)
    async with app_client(fake_providers(llm=llm), api_keys="key-alice,key-mallory") as client:
        first = await client.post(
            DIALOGUE, params={"session_id": "alice-1"}, content=wav, headers=alice
        )
        assert first.status_code == 200
        assert (await client.get(f"{URL}/alice-1", headers=alice)).status_code == 200
        assert (await client.get(f"{URL}/alice-1", headers=mallory)).status_code == 404
        assert (await client.delete(f"{URL}/alice-1", headers=mallory)).status_code == 404
        # Naming the id gives Mallory a fresh session: none of Alice's words in the prompt.
        second = await client.post(
            DIALOGUE, params={"session_id": "alice-1"}, content=wav, headers=mallory
        )
        assert second.status_code == 200
        assert [m.role for m in llm.calls[-1]] == ["system", "user"]
        alice_view = (await client.get(f"{URL}/alice-1", headers=alice)).json()
        assert len(alice_view["turns"]) == 1
        assert (await client.get(f"{URL}/alice-1")).status_code == 401
