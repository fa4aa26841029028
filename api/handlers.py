"""Turn every failure into the one JSON error body.

Domain errors, protocol errors, FastAPI's validation errors and Starlette's HTTP errors become
``{"error": {"code", "message", "details"}}``. Unknown exceptions become a 500 that names the
request id and nothing else (:class:`UnhandledErrorMiddleware`): no stack trace, no SQL, no values.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable, Iterator

from campsync_sync import ERROR_STATUS, ErrorBody, ErrorCode, ProtocolError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import JsonValue
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import DomainError
from api.logs import request_id_var

log = logging.getLogger("campsync.errors")


_HTTP_CODES = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.UNAUTHENTICATED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    422: ErrorCode.VALIDATION_ERROR,
    429: ErrorCode.RATE_LIMITED,
    503: ErrorCode.SERVICE_UNAVAILABLE,
}


def error_response(
    code: ErrorCode,
    message: str,
    details: JsonValue = None,
    *,
    status: int | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody.of(code, message, details)
    return JSONResponse(
        body.model_dump(mode="json"),
        status_code=status or ERROR_STATUS[code],
        headers=headers,
    )


def _validation_details(exc: RequestValidationError) -> list[JsonValue]:
    # Only where and what: the offending input may be personal data and is never echoed.
    return [
        {"loc": [str(part) for part in err.get("loc", ())], "type": err.get("type", "")}
        for err in exc.errors()[:20]
    ]


async def _domain(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)  # noqa: S101 - registered for this class only
    return error_response(exc.code, exc.message, exc.details, headers=exc.headers)


async def _protocol(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProtocolError)  # noqa: S101
    return error_response(exc.code, str(exc))


async def _validation(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    return error_response(
        ErrorCode.VALIDATION_ERROR, "the request is not valid", _validation_details(exc)
    )


_BUSY_HEADERS = {"Retry-After": "1"}


async def _pool_timeout(_: Request, exc: Exception) -> Response:
    # Admission keeps requests in progress below the pool's size, so this is rare: a
    # request that held more connections than usual, or a database that answers slowly.
    log.warning("no database connection in time", extra={"exc_type": type(exc).__name__})
    return error_response(
        ErrorCode.SERVICE_UNAVAILABLE,
        "the server is busy: retry after Retry-After seconds",
        {"retry_after_ms": 1000},
        headers=_BUSY_HEADERS,
    )


async def _operational(_: Request, exc: Exception) -> Response:
    # A database that is locked (SQLite's busy timeout) or refuses a lock in time
    # (PostgreSQL's lock_timeout, 55P03) is busy, not broken.
    assert isinstance(exc, OperationalError)  # noqa: S101
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate == "55P03" or "database is locked" in str(exc.orig):
        return error_response(
            ErrorCode.SERVICE_UNAVAILABLE,
            "the database is busy: retry after Retry-After seconds",
            {"retry_after_ms": 1000},
            headers=_BUSY_HEADERS,
        )
    _log_unhandled(exc)
    return _internal()


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    code = _HTTP_CODES.get(exc.status_code, ErrorCode.BAD_REQUEST)
    message = exc.detail if isinstance(exc.detail, str) else code.value.replace("_", " ")
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": _allowed_methods(request)}
    return error_response(code, message, status=exc.status_code, headers=headers)


def _allowed_methods(request: Request) -> str:
    # Starlette names only the first route that matches the path; a path served by several
    # routes (GET and POST /v1/camps) allows the methods of all of them.
    methods: set[str] = set()
    for route in _leaf_routes(request.app.router.routes):
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


def _leaf_routes(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    # Included routers nest their routes (in ``original_router`` in recent FastAPI).
    for route in routes:
        inner = getattr(getattr(route, "original_router", None), "routes", None)
        inner = inner or getattr(route, "routes", None)
        if inner:
            yield from _leaf_routes(inner)
        else:
            yield route


class UnhandledErrorMiddleware:
    """Turn any exception that escaped the handlers into a 500 error body.

    It runs inside the request-id middleware, so the answer carries ``X-Request-ID``, and it
    swallows the exception so that uvicorn does not print it: an exception's message may hold
    SQL parameters or values. The log gets the exception's type and frames only.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except ClientDisconnect:
            # The client hung up, or was cut off for sending its body too slowly: nobody
            # is left to answer.
            log.info("client disconnected before its request was read")
        except Exception as exc:
            _log_unhandled(exc)
            if not started:
                await _internal()(scope, receive, send)


def _log_unhandled(exc: BaseException) -> None:
    frames = "".join(traceback.format_list(traceback.extract_tb(exc.__traceback__)[-8:]))
    log.error("unhandled exception", extra={"exc_type": type(exc).__name__, "frames": frames})


def _internal() -> JSONResponse:
    return error_response(
        ErrorCode.INTERNAL_ERROR, "internal error", {"request_id": request_id_var.get()}
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain)
    app.add_exception_handler(ProtocolError, _protocol)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(PoolTimeout, _pool_timeout)
    app.add_exception_handler(OperationalError, _operational)
