"""Liveness and readiness. Both answer while the worker is busy with other requests.

``/healthz`` runs on the event loop itself. ``/readyz`` checks the database from a thread of
its own, over a connection of its own (no pool: a crowd that has taken every pooled
connection must not make the server look dead), and within a deadline. Only an admin is
told which database and which schema revision: anyone else learns ready or not.
"""

from __future__ import annotations

from functools import cache
from typing import Final

import anyio
from campsync_sync import ErrorBody, ErrorCode
from fastapi import APIRouter, Request
from pydantic import BaseModel
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from api.auth import Public, authenticate_token
from api.db import current_revision, head_revision
from api.errors import DomainError
from api.principal import Role

router = APIRouter(tags=["health"], dependencies=[Public])
_UNAVAILABLE = ErrorCode.SERVICE_UNAVAILABLE
READY_DEADLINE_SECONDS: Final = 2.0
_checks = anyio.CapacityLimiter(2)


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: str | None = None
    """Shown to admins only, as are the revisions."""
    revision: str | None = None
    head: str | None = None


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> Health:
    """Answers 200 while the process runs; it does not touch the database."""
    return Health(status="ok")


@cache
def _head() -> str:
    return head_revision()  # reads the migration scripts: once per process


def _check(engine: Engine, token: str | None) -> tuple[str | None, bool]:
    """The schema revision, and whether the caller is an admin (a bad token: not one)."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    revision = current_revision(engine)
    admin = False
    if token is not None:
        with Session(engine) as session:
            try:
                admin = authenticate_token(session, token).role == Role.ADMIN
            except DomainError:
                admin = False
    return revision, admin


@router.get(
    "/readyz",
    summary="Readiness: the database answers and its schema is at the newest migration",
    response_model_exclude_none=True,
    responses={503: {"model": ErrorBody, "description": "Not ready"}},
)
async def readyz(request: Request) -> Readiness:
    """Ready when a query succeeds and the schema revision is the code's head revision.

    With an admin's bearer token the answer names the database and both revisions.
    """
    engine: Engine = request.app.state.health_engine
    # Read by hand, not through the bearer scheme: a token is optional here, and the OpenAPI
    # description must not say the route needs one.
    scheme, _, token_text = request.headers.get("authorization", "").partition(" ")
    token = token_text.strip() if scheme.lower() == "bearer" and token_text.strip() else None
    head = _head()
    outcome: tuple[str | None, bool] | None = None
    try:
        with anyio.move_on_after(READY_DEADLINE_SECONDS):
            outcome = await anyio.to_thread.run_sync(
                _check, engine, token, limiter=_checks, abandon_on_cancel=True
            )
    except SQLAlchemyError:
        raise DomainError(
            "database unreachable", {"database": "unreachable"}, code=_UNAVAILABLE
        ) from None
    if outcome is None:
        raise DomainError(
            "the database did not answer in time",
            {"database": "slow", "deadline_ms": int(READY_DEADLINE_SECONDS * 1000)},
            code=_UNAVAILABLE,
            headers={"Retry-After": "1"},
        )
    revision, admin = outcome
    if revision != head:
        raise DomainError(
            "database schema is not at the newest migration: run `campsync db upgrade`",
            {"revision": revision, "head": head} if admin else None,
            code=_UNAVAILABLE,
        )
    if not admin:
        return Readiness(status="ready")
    return Readiness(status="ready", database=engine.dialect.name, revision=revision, head=head)
