"""The browser page at ``/`` and its static files: plain HTML, CSS and an ES module shipped
inside the package, so it works where no CDN is reachable."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent.parent / "static"
STATIC_PATH = "/static"
PAGE_PATH = "/"
# What the page needs and nothing more: its own scripts (the capture worklet included), styles
# and API (``'self'`` covers ws:/wss: to the same host), answers played from ``data:`` URLs,
# and no framing by other sites.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self' data: blob:",
        "connect-src 'self'",
        "worker-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

router = APIRouter()


@router.get(PAGE_PATH, include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


def static_files() -> StaticFiles:
    return StaticFiles(directory=STATIC)


def is_page(path: str) -> bool:
    """The page or one of its static files: what carries the page's security policy."""
    return path in (PAGE_PATH, STATIC_PATH) or path.startswith(STATIC_PATH + "/")
