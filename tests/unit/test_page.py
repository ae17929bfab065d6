"""The page and its static files are served by the app, outside the API schema and the keys."""

from __future__ import annotations

from ..conftest import AppClient


async def test_page_and_static_files_are_served(app_client: AppClient) -> None:
    async with app_client(api_keys="secret") as client:
        page = await client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        for path in ("/static/app.js", "/static/worklet.js", "/static/style.css"):
            assert f'"{path}"' in page.text or path == "/static/worklet.js"
            response = await client.get(path)
            assert response.status_code == 200, path
        script = await client.get("/static/app.js")
        assert "javascript" in script.headers["content-type"]
        assert "/api/v1/orchestrator/ws" in script.text
        missing = await client.get("/static/nothing.js")
        assert missing.status_code == 404
        schema = (await client.get("/openapi.json")).json()
        assert "/" not in schema["paths"]
