"""Dependencies: what a route needs, taken from the application state built in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from ..drain import Drain
from ..health import HealthChecker
from ..metrics import Metrics
from ..pipeline.admission import Admission
from ..pipeline.sessions import SessionStore, owner_of
from ..pipeline.telemetry import TurnTelemetry
from ..pipeline.turns import Turns
from ..providers.base import Providers
from ..settings import Settings
from .middleware import presented_key


@dataclass(slots=True)
class Services:
    """Everything the lifespan builds, kept on ``app.state.services``."""

    settings: Settings
    providers: Providers
    slots: Admission
    sessions: SessionStore
    metrics: Metrics
    health: HealthChecker
    telemetry: TurnTelemetry
    turns: Turns
    drain: Drain
    call_token_secret: bytes  # signs the tokens that tie a Twilio stream to its call
    open_sockets: int = 0  # sockets of every route, against ORCH_MAX_SESSIONS
    sockets_by_owner: dict[str, int] = field(default_factory=dict)

    def owner(self, connection: HTTPConnection) -> str:
        """Who a request's sessions belong to: its API key's owner name, or nobody (empty)
        when the service has no keys."""
        if not self.settings.api_keys:
            return ""
        return owner_of(presented_key(connection.scope))


async def get_services(request: Request) -> Services:
    # Async so that FastAPI calls it on the event loop: a sync dependency costs a thread hop.
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
