"""The application factory. Nothing is built at import: ``create_app`` and its lifespan do it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from .api import errors
from .api.acs import router as acs_router
from .api.deps import Services
from .api.dialogue import router as dialogue_router
from .api.headers import HeadAsGet, SecurityHeaders
from .api.middleware import ApiKeyAuth, BodyLimit, DrainGuard, RequestContext
from .api.openai_realtime.router import router as openai_realtime_router
from .api.page import STATIC_PATH, static_files
from .api.page import router as page_router
from .api.ratelimit import RateLimit
from .api.realtime import router as realtime_router
from .api.request_metrics import RequestMetrics
from .api.sessions import router as sessions_router
from .api.status import router as status_router
from .api.twilio import router as twilio_router
from .drain import Drain, SigtermDrain
from .health import HealthChecker, RecentOutcomes
from .metrics import Metrics
from .observability import configure_logging
from .pipeline.admission import open_admission
from .pipeline.rate_limits import build_rate_limiter
from .pipeline.sessions import open_session_store
from .pipeline.telemetry import TurnTelemetry
from .pipeline.tool_loop import ToolPolicy
from .pipeline.turns import TurnPolicy, Turns
from .providers.base import Providers
from .providers.factory import build_providers
from .settings import Settings
from .telephony import call_token_secret
from .tools import check_tool_support, load_toolbox

logger = logging.getLogger(__name__)

VERSION = version("voice-orchestrator")
# What a browser page on an allowed origin may read of a response.
EXPOSED_HEADERS = [
    "X-Request-Id", "X-Session-Id", "X-Processing-Time-STT", "X-Processing-Time-LLM",
    "X-Processing-Time-TTS", "X-Processing-Time-Total", "X-Time-To-First-Audio", "Server-Timing",
    "X-Input-Duration", "X-Input-Sample-Rate", "X-Input-Channels", "X-Output-Duration",
    "X-Output-Sample-Rate", "X-Output-Format", "X-Processing-Time-Tools", "X-Transcript",
    "X-Response-Text", "Retry-After",
    "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset",
]  # fmt: skip


def create_app(
    settings: Settings | None = None,
    providers: Providers | None = None,
    *,
    drain_on_sigterm: bool = False,
) -> FastAPI:
    """Builds the app. Tests pass ``settings`` and in-process ``providers``; otherwise settings
    come from the environment and providers are built (engines loaded) in the lifespan. With
    ``drain_on_sigterm`` (the served app), SIGTERM drains before the server shuts down."""
    settings = settings if settings is not None else Settings()
    drain = Drain(settings.drain_timeout_s)
    # Built here, not in the lifespan, because the request middleware needs it.
    metrics = Metrics()
    # Also here: the rate-limit middleware needs it. A Redis client connects on first use.
    limiter = build_rate_limiter(settings.rate_limit, settings.admission_store)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A tools file the language model cannot use stops start-up before anything loads.
        check_tool_support(settings)
        async with AsyncExitStack() as stack:
            # First: a wrong store URL should stop start-up before the engines load.
            sessions = await open_session_store(settings)
            stack.push_async_callback(sessions.aclose)
            slots = await open_admission(settings)
            stack.push_async_callback(slots.aclose)
            if limiter is not None:
                stack.push_async_callback(limiter.aclose)
            toolbox = await load_toolbox(settings, on_call=metrics.count_tool_call)
            if toolbox is not None:
                stack.push_async_callback(toolbox.aclose)
            if providers is None:  # injected providers belong to the caller
                built = await build_providers(
                    settings,
                    on_retry=metrics.count_retry,
                    on_serve=metrics.count_served,
                    on_cut=metrics.count_cut,
                )
                stack.push_async_callback(built.aclose)
            else:
                built = providers
            metrics.watch_slots(slots)
            outcomes = RecentOutcomes()
            telemetry = TurnTelemetry(metrics, outcomes)
            health = HealthChecker(
                built,
                outcomes,
                slow_ms=settings.status_slow_ms,
                timeout_s=settings.status_timeout_s,
                cache_s=settings.status_cache_s,
            )
            stack.push_async_callback(health.aclose)
            turns = Turns(
                built,
                slots,
                sessions,
                telemetry,
                TurnPolicy.from_settings(settings),
                tools=toolbox,
                tool_policy=ToolPolicy(
                    max_rounds=settings.max_tool_rounds,
                    filler=settings.tool_filler,
                    filler_ms=settings.tool_filler_ms,
                ),
            )
            app.state.services = Services(
                settings=settings,
                providers=built,
                slots=slots,
                sessions=sessions,
                metrics=metrics,
                health=health,
                telemetry=telemetry,
                turns=turns,
                drain=drain,
                call_token_secret=call_token_secret(settings.twilio_auth_token),
            )
            if drain_on_sigterm:
                sigterm = SigtermDrain(drain)
                sigterm.install()
                stack.push_async_callback(sigterm.aclose)
            logger.info("service ready", extra={"version": VERSION})
            yield

    app = FastAPI(
        title="voice-orchestrator",
        version=VERSION,
        summary="Spoken question in, spoken answer out.",
        lifespan=lifespan,
    )
    errors.install(app)
    app.include_router(dialogue_router, tags=["dialogue"])
    app.include_router(sessions_router, tags=["sessions"])
    app.include_router(status_router, tags=["operations"])
    app.include_router(realtime_router)
    app.include_router(twilio_router)
    app.include_router(acs_router)
    app.include_router(openai_realtime_router)
    app.include_router(page_router)
    app.mount(STATIC_PATH, static_files(), name="static")
    app.add_middleware(HeadAsGet)
    app.add_middleware(
        BodyLimit, max_bytes=settings.max_upload_bytes, timeout_s=settings.upload_timeout_s
    )
    if limiter is not None:  # inside the key check: only accepted keys are counted
        app.add_middleware(RateLimit, limiter=limiter)
    keys = [key.get_secret_value().encode() for key in settings.api_keys]
    app.add_middleware(ApiKeyAuth, keys=keys)
    app.add_middleware(DrainGuard, drain=drain)
    app.add_middleware(RequestContext)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-Id"],
            expose_headers=EXPOSED_HEADERS,
            max_age=600,
        )
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestMetrics, metrics=metrics)  # outermost: sees every status
    return app


def app_from_env() -> FastAPI:
    """Entry point for ``uvicorn --factory``: settings and logging from the environment."""
    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    return create_app(settings, drain_on_sigterm=True)
