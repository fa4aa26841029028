from __future__ import annotations

import datetime as dt
from typing import Annotated

from campsync_sync import ErrorBody, ErrorCode
from fastapi import APIRouter, Depends, Request, status
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, StringConstraints

from api.auth import AnyUser, Public, bearer_scheme
from api.deps import SettingsDep, WriteSessionDep
from api.errors import DomainError, Unauthenticated
from api.ratelimit import FailureLimiter
from api.routes.common import ERRORS_READ
from api.security import hash_token
from api.users import service

router = APIRouter(prefix="/v1/auth", tags=["auth"])


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class LoginToken(BaseModel):
    token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_at: dt.datetime


def _limiter(request: Request, settings: SettingsDep) -> FailureLimiter:
    limiter: FailureLimiter | None = getattr(request.app.state, "login_limiter", None)
    if limiter is None:
        limiter = FailureLimiter(settings.login_max_failures, settings.login_lockout_minutes * 60)
        request.app.state.login_limiter = limiter
    return limiter


@router.post(
    "/login",
    summary="Exchange a username and password for a short-lived token",
    dependencies=[Public],
    responses={
        400: {"model": ErrorBody, "description": "The body is not valid JSON"},
        401: {"model": ErrorBody, "description": "Invalid username or password"},
        413: {"model": ErrorBody, "description": "Request body too large"},
        422: {"model": ErrorBody, "description": "Invalid body"},
        429: {"model": ErrorBody, "description": "Too many failed attempts; see Retry-After"},
    },
)
def login(
    data: LoginRequest,
    request: Request,
    session: WriteSessionDep,
    settings: SettingsDep,
    limiter: Annotated[FailureLimiter, Depends(_limiter)],
) -> LoginToken:
    """Users with a password (``campsync admin set-password``) log in here.

    The token lasts ``CAMPSYNC_LOGIN_TOKEN_TTL_MINUTES``. Repeated failures for a username or
    an address are refused with 429 for a while.
    """
    keys = (
        f"user:{data.username.casefold()}",
        f"ip:{request.client.host if request.client else '-'}",
    )
    wait = limiter.retry_after(*keys)
    if wait is not None:
        raise DomainError(
            "too many failed logins; try again later",
            {"retry_after_seconds": wait},
            code=ErrorCode.RATE_LIMITED,
            headers={"Retry-After": str(wait)},
        )
    try:
        token, expires = service.login(
            session=session,
            username=data.username,
            password=data.password,
            ttl=dt.timedelta(minutes=settings.login_token_ttl_minutes),
        )
    except Unauthenticated:
        limiter.fail(*keys)
        raise
    limiter.reset(keys[0])
    return LoginToken(token=token, expires_at=expires)


@router.post(
    "/logout",
    summary="Revoke the token used for this request",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=ERRORS_READ,
)
def logout(
    principal: AnyUser,
    session: WriteSessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> None:
    """The token stops working at once."""
    if credentials is not None:
        service.revoke_token(session=session, token_hash=hash_token(credentials.credentials))
