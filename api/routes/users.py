"""Admins' controls over users: list them, revoke their tokens, disable and enable them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.auth import Admin
from api.deps import SessionDep, WriteSessionDep
from api.routes.common import ERRORS_LIST, ERRORS_WRITE
from api.users import service
from api.users.schemas import USERNAME_PATTERN, TokensRevoked, UserFilters, UserList, UserPublic

router = APIRouter(prefix="/v1/users", tags=["users"])

Username = Annotated[
    str, Path(pattern=USERNAME_PATTERN, description="The user's login name.", max_length=64)
]


@router.get("", summary="List users", responses=ERRORS_LIST)
def list_users(
    filters: Annotated[UserFilters, Query()], session: SessionDep, principal: Admin
) -> UserList:
    """Admins only. Every user, oldest first: role, camps, whether disabled, live tokens."""
    page = service.list_users(session=session, filters=filters)
    return UserList(items=page.items, next_cursor=page.next_cursor)


@router.post(
    "/{username}/revoke-tokens",
    summary="Revoke every token of a user",
    responses=ERRORS_WRITE,
)
def revoke_tokens(username: Username, session: WriteSessionDep, principal: Admin) -> TokensRevoked:
    """Admins only. Every live token of the user stops working at once; login still works."""
    revoked = service.revoke_user_tokens(session=session, username=username, actor=principal.actor)
    return TokensRevoked(revoked=revoked)


@router.post("/{username}/disable", summary="Disable a user", responses=ERRORS_WRITE)
def disable_user(username: Username, session: WriteSessionDep, principal: Admin) -> UserPublic:
    """Admins only. The user's tokens stop working at once and login is refused.

    Nothing is revoked: enabling the user restores their unexpired tokens. An admin cannot
    disable themselves (409): nobody locks themselves out by mistake.
    """
    return service.disable_user(
        session=session, username=username, principal=principal, actor=principal.actor
    )


@router.post("/{username}/enable", summary="Enable a disabled user", responses=ERRORS_WRITE)
def enable_user(username: Username, session: WriteSessionDep, principal: Admin) -> UserPublic:
    """Admins only. The user's unrevoked, unexpired tokens work again, and so does login."""
    return service.enable_user(session=session, username=username, actor=principal.actor)
