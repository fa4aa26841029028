"""The FastAPI application factory."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from campsync_sync import ErrorCode
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from api.config import Settings, get_settings
from api.db import engine_from_settings
from api.handlers import UnhandledErrorMiddleware, install_error_handlers
from api.limits import BodyLimitMiddleware
from api.logs import RequestContextMiddleware, configure_logging
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
)
"""Every router of the app; the authorisation test walks them all."""

_BATCHES = "/v1/sync/batches/"
API_DESCRIPTION = """
campsync registers arriving households at reception camps, merges what offline tablets
sync, and lets coordinators see needs, conflicts and duplicates. Every error answers
`{"error": {"code", "message", "details"}}`; codes are listed in `docs/protocol.md`.
"""


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    """Build the app. Tests pass their own settings and engine; ``serve`` uses the environment."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)
    owns_engine = engine is None
    app_engine = engine if engine is not None else engine_from_settings(settings)

    keyring = Keyring(app_engine, settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Everything alive after start-up lives as long as the process: keep it out of the
        # collector's way, and collect less often. A 500-operation batch allocates objects
        # by the hundred thousand, and full collections over the app's long-lived objects
        # cost a third of the merge path's time otherwise.
        gc.freeze()
        gc.set_threshold(50_000, 20, 20)
        try:
            keyring.current()  # the first start creates the deployment id and the keys
        except SQLAlchemyError:
            # An unmigrated database: /readyz says so; keys are made on first use.
            logging.getLogger("campsync.keys").warning("keys not loaded: database not ready")
        yield
        if owns_engine:
            app_engine.dispose()

    app = FastAPI(
        title="campsync",
        version="0.1.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = app_engine
    app.state.keyring = keyring
    app.state.push_gate = sync.PushGate(
        patience=min(10.0, settings.request_timeout_seconds),
        merges=sync.SQLITE_MERGES_AT_ONCE if settings.is_sqlite else sync.MERGES_AT_ONCE,
        rebalance=settings.workers > 1,
    )
    install_error_handlers(app)
    # Added innermost first: request id → body limit → unhandled errors → the app.
    app.add_middleware(UnhandledErrorMiddleware)
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
    app.add_middleware(RequestContextMiddleware)
    for router in ROUTERS:
        app.include_router(router)
    return app
