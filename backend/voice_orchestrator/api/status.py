"""Operational endpoints: the status of the stages, liveness, and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ..health import ServiceStatus
from ..metrics import CONTENT_TYPE
from .deps import ServicesDep
from .schemas import Concurrency, Liveness, Readiness, ServiceHealth, StageServices, StatusResponse

router = APIRouter()


@router.get(
    "/api/orchestrator/status",
    summary="Health of the speech-to-text, language model and speech synthesis stages",
    response_model=StatusResponse,
    responses={503: {"model": StatusResponse, "description": "At least one stage is unhealthy"}},
)
async def status(request: Request, services: ServicesDep) -> JSONResponse:
    """Probes the providers (cached, shared between concurrent callers) and reports them with
    the concurrency of this process. 200 when healthy or degraded, 503 when unhealthy."""
    health = services.health
    report = await health.check()
    slots = services.slots
    body = StatusResponse(
        status=report.status,
        version=request.app.version,
        uptime_s=round(health.uptime_s, 1),
        checked_at=report.checked_at,
        concurrency=Concurrency(
            limit=slots.limit,
            active=slots.active,
            waiting=slots.waiting,
            store=slots.store,
            store_ok=await slots.ping(),
        ),
        services=StageServices(
            stt=_service(report.services["stt"]),
            llm=_service(report.services["llm"]),
            tts=_service(report.services["tts"]),
        ),
    )
    code = 503 if report.status == "unhealthy" else 200
    return JSONResponse(body.model_dump(mode="json"), status_code=code)


def _service(service: ServiceStatus) -> ServiceHealth:
    return ServiceHealth(
        status=service.status,
        provider=service.provider,
        model=service.model,
        latency_ms=service.latency_ms,
        detail=service.detail,
    )


@router.get("/health", summary="Liveness: the process answers; no upstream is touched")
async def health() -> Liveness:
    return Liveness(status="ok")


@router.get(
    "/metrics",
    summary="Prometheus metrics of this worker process",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(services: ServicesDep) -> Response:
    return Response(services.metrics.render(), media_type=CONTENT_TYPE)


@router.get(
    "/ready",
    summary="Readiness: 200 while serving, 503 while draining",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Draining: send no new work"}},
)
async def ready(request: Request) -> JSONResponse:
    """For load balancers and orchestrators; ``/health`` stays the liveness probe."""
    services = getattr(request.app.state, "services", None)
    if services is None or services.drain.draining:
        return JSONResponse(Readiness(status="draining").model_dump(), status_code=503)
    return JSONResponse(Readiness(status="ready").model_dump())
