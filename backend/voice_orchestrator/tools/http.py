"""HTTP tools: the arguments are POSTed as JSON, the JSON answer is the result."""

from __future__ import annotations

import json
from typing import Any

import httpx2

from .base import ToolFailure, json_text
from .config import HttpToolConfig

# An answer larger than this is refused before it is read into memory; the model only ever sees
# max_tool_result_chars of it anyway.
MAX_ANSWER_BYTES = 4 * 1024 * 1024
# How much of an error answer the model is shown (it often says what was wrong).
ERROR_BODY_CHARS = 500


class HttpTool:
    """One configured HTTP tool over the tool box's shared client."""

    def __init__(self, config: HttpToolConfig, client: httpx2.AsyncClient) -> None:
        self._config = config
        self._client = client
        self.name = config.name
        self.description = config.description
        self.parameters = config.parameters
        self.timeout_s = config.timeout_s

    async def invoke(self, arguments: dict[str, Any]) -> str:
        """The tool's answer as JSON text. Raises ToolFailure, or TimeoutError when the tool
        does not answer within its timeout."""
        headers = {key: value.get_secret_value() for key, value in self._config.headers.items()}
        try:
            async with self._client.stream(
                "POST",
                self._config.url,
                json=arguments,
                headers=headers,
                timeout=self.timeout_s,
            ) as response:
                body = await _read_capped(response)
        except httpx2.TimeoutException as e:
            raise TimeoutError from e
        except httpx2.HTTPError as e:
            # The class name only: some transport messages repeat the URL, which may hold a key.
            raise ToolFailure(f"the tool could not be reached ({type(e).__name__})") from e
        text = body.decode("utf-8", errors="replace")
        if response.status_code >= 400:
            detail = text[:ERROR_BODY_CHARS].strip()
            raise ToolFailure(
                f"the tool answered HTTP {response.status_code}" + (f": {detail}" if detail else "")
            )
        try:
            value = json.loads(text)
        except ValueError as e:
            raise ToolFailure("the tool's answer is not JSON") from e
        return json_text(value)


async def _read_capped(response: httpx2.Response) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            raise ToolFailure(f"the tool's answer is larger than {MAX_ANSWER_BYTES} bytes")
    return bytes(body)
