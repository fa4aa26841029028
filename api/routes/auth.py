from __future__ import annotations

import datetime as dt
from typing import Annotated

from campsync_sync import ErrorBody
from fastapi import APIRouter, Depends, Request, status
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, StringConstraints

from api.auth import AnyUser, Public, bearer_scheme
from api.deps import SettingsDep, WriteSessionDep
from api.ratelimit import Backoff, Blocked, client_address, too_many
from api.routes.common import ERRORS_READ
from api.schemas import Username
from api.security import hash_token
from api.users import service

router = APIRouter(prefix="/v1/auth", tags=["auth"])


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Username
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class LoginToken(BaseModel):
    token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_at: dt.datetime


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
) -> LoginToken:
    """Users with a password (``campsync admin set-password``) log in here.

    The token lasts ``CAMPSYNC_LOGIN_TOKEN_TTL_MINUTES``. After a few failures for a username
    from one address, each further try from there waits twice as long as the last (429 with
    Retry-After); the same user from another address is not held up by them.
    """
    backoff: Backoff = request.app.state.login_backoff
    user = data.username.casefold()
    address = client_address(request.client)
    pair = f"pair:{user}|{address}"
    try:
        attempt = backoff.begin(pair, f"address:{address}", f"user:{user}")
    except Blocked as blocked:
        raise too_many(blocked, "too many failed logins; try again later") from None
    token, expires = service.login(
        session=session,
        username=data.username,
        password=data.password,
        ttl=dt.timedelta(minutes=settings.login_token_ttl_minutes),
    )
    backoff.succeeded(attempt, reset=(pair,))
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
