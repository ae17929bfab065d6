"""The sessions resource: make a session, read its history, forget it at once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Path, Request, Response
from pydantic import BaseModel, Field

from ..errors import SessionNotFound
from ..patterns import SESSION_ID
from ..pipeline.sessions import SessionInfo, new_session_id
from ..pipeline.turns import SessionRef
from .deps import ServicesDep
from .schemas import ErrorBody

router = APIRouter(
    prefix="/api/orchestrator/sessions",
    responses={
        400: {"model": ErrorBody, "description": "Invalid session id or body"},
        401: {"model": ErrorBody, "description": "Missing or wrong API key"},
    },
)

SessionId = Annotated[str, Path(pattern=SESSION_ID.pattern)]
_NOT_FOUND = {404: {"model": ErrorBody, "description": "No such session of this caller"}}


class NewSession(BaseModel):
    session_id: str | None = Field(None, pattern=SESSION_ID.pattern)


class SessionCreated(BaseModel):
    session_id: str
    created_at: datetime


class StoredTurn(BaseModel):
    user: str
    assistant: str
    interrupted: bool
    at: datetime


class SessionHistory(BaseModel):
    """The stored history (redacted as stored) and when it expires without a new turn."""

    session_id: str
    turns: list[StoredTurn]
    expires_at: datetime


def _time(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


@router.post("", status_code=201, summary="Start a session", response_model=SessionCreated)
async def create_session(
    request: Request,
    services: ServicesDep,
    body: Annotated[NewSession | None, Body()] = None,
) -> SessionCreated:
    """Makes a session with an unguessable id, or with the given one."""
    session_id = body.session_id if body is not None and body.session_id else new_session_id()
    session = SessionRef(services.owner(request), session_id)
    info = await services.sessions.create(session.key)
    return SessionCreated(session_id=session_id, created_at=_time(info.created_at))


async def _info(request: Request, services: ServicesDep, session_id: str) -> SessionInfo:
    info = await services.sessions.info(SessionRef(services.owner(request), session_id).key)
    if info is None:
        raise SessionNotFound("No session with this id exists for this caller.")
    return info


@router.get(
    "/{session_id}",
    summary="Read a session's history",
    response_model=SessionHistory,
    responses=_NOT_FOUND,  # type: ignore[arg-type]
)
async def get_session(
    request: Request, services: ServicesDep, session_id: SessionId
) -> SessionHistory:
    info = await _info(request, services, session_id)
    return SessionHistory(
        session_id=session_id,
        turns=[
            StoredTurn(
                user=turn.user,
                assistant=turn.assistant,
                interrupted=turn.interrupted,
                at=_time(turn.at),
            )
            for turn in info.turns
        ],
        expires_at=_time(info.expires_at),
    )


@router.delete(
    "/{session_id}",
    status_code=204,
    summary="Forget a session now",
    response_class=Response,
    responses=_NOT_FOUND,  # type: ignore[arg-type]
)
async def delete_session(
    request: Request, services: ServicesDep, session_id: SessionId
) -> Response:
    """Erases the history from the store at once (every instance shares the Redis store)."""
    deleted = await services.sessions.delete(SessionRef(services.owner(request), session_id).key)
    if not deleted:
        raise SessionNotFound("No session with this id exists for this caller.")
    return Response(status_code=204)
