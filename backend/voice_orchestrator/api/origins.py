"""Which pages may open a WebSocket to the service.

Browsers send ``Origin`` on every WebSocket handshake and, unlike ``fetch``, apply no CORS check
to sockets: without this check any site a user visits could talk to the service in their name
(with the key the page at ``/`` keeps). Clients that send no ``Origin`` are not browsers and are
unaffected; the API key, where configured, guards them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from urllib.parse import urlsplit

from starlette.websockets import WebSocket

from ..settings import Settings

logger = logging.getLogger(__name__)

# Sent as the close code before accepting; the server turns that into HTTP 403.
CLOSE_POLICY_VIOLATION = 1008
DEFAULT_PORTS = {"http": "80", "https": "443"}


def _authority(host: str, scheme: str | None) -> str:
    """``host[:port]`` in lower case, without the port when it is the scheme's default (or any
    default port when the scheme is unknown, as for the ``Host`` header)."""
    host = host.strip().lower()
    name, colon, port = host.rpartition(":")
    if not colon or "]" in port:  # no port (an IPv6 literal's last colon is inside brackets)
        return host
    defaults = [DEFAULT_PORTS[scheme]] if scheme in DEFAULT_PORTS else DEFAULT_PORTS.values()
    return name if port in defaults else host


def origin_allowed(headers: Mapping[str, str], settings: Settings) -> bool:
    """True when the handshake's ``Origin`` is absent, is the service's own origin (the host
    the client addressed, over http or https) or is listed in ``ORCH_CORS_ORIGINS``."""
    origin = headers.get("origin")
    if origin is None:
        return True
    origin = origin.strip()
    allowed = settings.cors_origins
    if "*" in allowed or origin in allowed:  # as the CORS middleware compares
        return True
    parts = urlsplit(origin)
    host = headers.get("host")
    if parts.scheme not in DEFAULT_PORTS or not parts.netloc or not host:
        return False
    return _authority(parts.netloc, parts.scheme) == _authority(host, None)


async def refuse_foreign_origin(websocket: WebSocket) -> bool:
    """Refuses the handshake (HTTP 403) when its origin is not allowed; True if it did. Socket
    routes call this before anything else and return when it is True."""
    settings: Settings = websocket.app.state.services.settings
    if origin_allowed(websocket.headers, settings):
        return False
    logger.info("websocket refused: foreign origin", extra={"path": websocket.url.path})
    await websocket.close(CLOSE_POLICY_VIOLATION)
    return True
