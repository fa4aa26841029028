"""The FastAPI application factory."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from campsync_sync import ErrorCode
from fastapi import FastAPI
from sqlalchemy import Engine, NullPool
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import Scope

from api.admission import Admission, AdmissionMiddleware
from api.config import Settings, get_settings
from api.db import engine_from_settings
from api.edge import TextGuardMiddleware
from api.handlers import UnhandledErrorMiddleware, install_error_handlers
from api.headers import SecurityHeadersMiddleware
from api.limits import BodyLimitMiddleware
from api.logs import RequestContextMiddleware, configure_logging
from api.ratelimit import Backoff
from api.routes import (
    audit,
    auth,
    camps,
    conflicts,
    devices,
    events,
    exports,
    flags,
    health,
    households,
    stats,
    sync,
    users,
)
from api.sync.keys import Keyring

ROUTERS = (
    health.router,
    auth.router,
    camps.router,
    devices.router,
    sync.router,
    households.households,
    households.persons,
    conflicts.router,
    events.services,
    events.referrals,
    flags.router,
    stats.router,
    exports.router,
    audit.router,
    users.router,
)
"""Every router of the app; the authorisation test walks them all."""

_BATCHES = "/v1/sync/batches/"
_HEALTH = frozenset({"/healthz", "/readyz"})
_NO_DOCS: dict[str, Any] = {"docs_url": None, "redoc_url": None, "openapi_url": None}
API_DESCRIPTION = """
campsync registers arriving households at reception camps, merges what offline tablets
sync, and lets coordinators see needs, conflicts and duplicates. Every error answers
`{"error": {"code", "message", "details"}}`; codes are listed in `docs/protocol.md`.
"""


def _own_gate(scope: Scope) -> bool:
    """Requests that skip admission: health checks, and pushes (they have the push gate)."""
    path: str = scope["path"]
    return path in _HEALTH or (scope["method"] == "PUT" and path.startswith(_BATCHES))


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    """Build the app. Tests pass their own settings and engine; ``serve`` uses the environment."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)
    owns_engine = engine is None
    app_engine = engine if engine is not None else engine_from_settings(settings)

    keyring = Keyring(app_engine, settings)
    # Readiness checks connect on their own (no pool): a crowd holding every pooled
    # connection must not make a busy worker look dead to its load balancer.
    health_engine = engine_from_settings(
        settings.model_copy(update={"database_url": app_engine.url.render_as_string(False)}),
        poolclass=NullPool,
    )
    admission = Admission(
        settings.max_requests_in_progress, settings.max_requests_queued, settings.queue_wait_seconds
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Everything alive after start-up lives as long as the process: keep it out of the
        # collector's way, and collect less often. A 500-operation batch allocates objects
        # by the hundred thousand, and full collections over the app's long-lived objects
        # cost a third of the merge path's time otherwise.
        gc.freeze()
        gc.set_threshold(50_000, 20, 20)
        # Every admitted request and every merge may hold a thread; nothing else waits for
        # one, so the pool never starves a request that already holds a connection.
        threads = anyio.to_thread.current_default_thread_limiter()
        threads.total_tokens = max(40, admission.limit + sync.MAX_CONCURRENT_PUSHES + 8)
        try:
            keyring.current()  # the first start creates the deployment id and the keys
        except SQLAlchemyError:
            # An unmigrated database: /readyz says so; keys are made on first use.
            logging.getLogger("campsync.keys").warning("keys not loaded: database not ready")
        yield
        health_engine.dispose()
        if owns_engine:
            app_engine.dispose()

    app = FastAPI(
        title="campsync",
        version="0.1.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        **({} if settings.docs_enabled else _NO_DOCS),
    )
    app.state.settings = settings
    app.state.engine = app_engine
    app.state.health_engine = health_engine
    app.state.admission = admission
    free, ceiling = settings.login_free_failures, settings.login_max_backoff_seconds
    app.state.login_backoff = Backoff(
        {"pair": free, "address": 4 * free, "user": 10 * free}, max_seconds=ceiling
    )
    app.state.token_backoff = Backoff({"device": 10, "address": 40}, max_seconds=ceiling)
    app.state.enrollment_backoff = Backoff(
        {"address": settings.enrollment_free_failures}, max_seconds=ceiling
    )
    app.state.keyring = keyring
    app.state.push_gate = sync.PushGate(
        patience=min(10.0, settings.request_timeout_seconds),
        merges=sync.SQLITE_MERGES_AT_ONCE if settings.is_sqlite else sync.MERGES_AT_ONCE,
        rebalance=settings.workers > 1,
    )
    install_error_handlers(app)
    # Added innermost first. From the outside in: request id and log line, security
    # headers, text guard, admission, unhandled errors, body limit, the app. The body limit
    # sits inside the error middleware so that its own signal is not taken for a crash.
    app.add_middleware(
        BodyLimitMiddleware,
        limit_for=lambda path: (
            settings.max_envelope_bytes
            if path.startswith(_BATCHES)
            else settings.max_json_body_bytes
        ),
        code_for=lambda path: (
            ErrorCode.ENVELOPE_TOO_LARGE
            if path.startswith(_BATCHES)
            else ErrorCode.PAYLOAD_TOO_LARGE
        ),
    )
    app.add_middleware(UnhandledErrorMiddleware)
    app.add_middleware(AdmissionMiddleware, admission=admission, exempt=_own_gate)
    app.add_middleware(TextGuardMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestContextMiddleware)
    for router in ROUTERS:
        app.include_router(router)
    return app
