"""Dependencies: what a route needs, taken from the application state built in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from ..health import HealthChecker
from ..metrics import Metrics
from ..pipeline.admission import Admission
from ..pipeline.sessions import SessionStore
from ..pipeline.telemetry import TurnTelemetry
from ..providers.base import Providers
from ..settings import Settings


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
    open_sockets: int = 0  # WebSocket sessions, against ORCH_MAX_SESSIONS


async def get_services(request: Request) -> Services:
    # Async so that FastAPI calls it on the event loop: a sync dependency costs a thread hop.
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
