"""Users and their bearer tokens: creation, passwords, login, and the admin's controls.

Every token expires. A login token lasts ``CAMPSYNC_LOGIN_TOKEN_TTL_MINUTES``; a token made by
``campsync admin create-user`` or ``create-token`` (an integrator's API token) lasts
:data:`API_TOKEN_TTL` unless the admin chooses another lifetime, up to :data:`MAX_API_TOKEN_TTL`.
``api.auth`` refuses an expired or revoked token, and every token of a disabled user.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy import func, select, update
from sqlmodel import Session, col

from api.audit import service as audit
from api.camps.models import Camp
from api.errors import AlreadyExists, ConflictError, InvalidInput, NotFound, Unauthenticated
from api.pagination import Page, after_time_and_id, page_of
from api.principal import Principal, Role, Scope
from api.security import hash_password, hash_token, new_token, verify_password
from api.types import utcnow
from api.users.models import ApiToken, AppUser, UserCamp
from api.users.schemas import USERNAME_PATTERN, UserFilters, UserPublic

API_TOKEN_TTL: Final = dt.timedelta(days=90)
"""Lifetime of an API token unless the admin chooses another."""
MAX_API_TOKEN_TTL: Final = dt.timedelta(days=366)
"""No API token outlives a year: an integration is re-authorised at least yearly."""
_USERNAME = re.compile(USERNAME_PATTERN)


@dataclass(frozen=True)
class IssuedToken:
    token: str
    """The bearer token, shown once; only its SHA-256 is stored."""
    expires_at: dt.datetime


def _actor_type(actor: str) -> str:
    return "user" if actor.startswith("user:") else "system"


def _check_ttl(ttl: dt.timedelta) -> None:
    if not dt.timedelta(0) < ttl <= MAX_API_TOKEN_TTL:
        raise InvalidInput(f"a token lasts more than 0 and at most {MAX_API_TOKEN_TTL.days} days")


def _check_scopes(scopes: Sequence[str]) -> None:
    unknown_scopes = sorted(set(scopes) - {s.value for s in Scope})
    if unknown_scopes:
        raise InvalidInput(f"unknown scope {unknown_scopes[0]!r}")


def _user(session: Session, username: str) -> AppUser:
    user: AppUser | None = session.execute(
        select(AppUser).where(col(AppUser.username) == username)
    ).scalar_one_or_none()
    if user is None:
        raise NotFound(f"user {username!r} does not exist")
    return user


def create_user(
    *,
    session: Session,
    username: str,
    role: str,
    camps: Sequence[str] = (),
    all_camps: bool = False,
    scopes: Sequence[str] = (),
    password: str | None = None,
    token_ttl: dt.timedelta = API_TOKEN_TTL,
    actor: str = "cli",
) -> tuple[AppUser, str]:
    """Create a user and a first API token; returns the user and the token (shown once)."""
    try:
        role_value = Role(role)
    except ValueError:
        raise InvalidInput(
            f"unknown role {role!r}: choose admin, coordinator or integrator"
        ) from None
    _check_scopes(scopes)
    _check_ttl(token_ttl)
    if not _USERNAME.fullmatch(username):
        raise InvalidInput(
            "username must be 1-64 letters, digits, '.', '-' or '_', starting with a letter "
            "or digit"
        )
    if session.execute(select(AppUser).where(col(AppUser.username) == username)).first():
        raise AlreadyExists(f"user {username!r} already exists")
    for camp_id in camps:
        if session.get(Camp, camp_id) is None:
            raise NotFound(f"camp {camp_id!r} does not exist")
    if role_value is not Role.ADMIN and not camps and not all_camps:
        raise InvalidInput("a coordinator or integrator needs --camp (or --all-camps)")
    user = AppUser(
        username=username,
        role=role_value.value,
        all_camps=all_camps or role_value is Role.ADMIN,
        password_hash=hash_password(password) if password else None,
    )
    session.add(user)
    session.flush()
    for camp_id in dict.fromkeys(camps):
        session.add(UserCamp(user_id=user.id, camp_id=camp_id))
    issued = issue_token(session=session, user=user, scopes=scopes, ttl=token_ttl)
    audit.append(
        session,
        actor_type=_actor_type(actor),
        actor_id=actor,
        action="user.create",
        entity="user",
        entity_id=user.id,
        details={
            "role": role_value.value,
            "camps": sorted(set(camps)),
            "scopes": sorted(scopes),
            "token_expires_at": issued.expires_at.isoformat(),
        },
    )
    session.commit()
    return user, issued.token


def issue_token(
    *,
    session: Session,
    user: AppUser,
    ttl: dt.timedelta,
    scopes: Sequence[str] = (),
    name: str | None = None,
) -> IssuedToken:
    token = new_token()
    row = ApiToken(
        user_id=user.id,
        token_hash=hash_token(token),
        name=name,
        scopes=sorted(set(scopes)),
        expires_at=utcnow() + ttl,
    )
    session.add(row)
    session.flush()
    return IssuedToken(token, row.expires_at)


def create_token(
    *,
    session: Session,
    username: str,
    ttl: dt.timedelta = API_TOKEN_TTL,
    scopes: Sequence[str] = (),
    actor: str = "cli",
) -> IssuedToken:
    """Issue another API token for a user, e.g. to rotate an integrator's token."""
    _check_scopes(scopes)
    _check_ttl(ttl)
    user = _user(session, username)
    if user.disabled_at is not None:
        raise ConflictError(f"user {username!r} is disabled; enable them first")
    issued = issue_token(session=session, user=user, scopes=scopes, ttl=ttl)
    audit.append(
        session,
        actor_type=_actor_type(actor),
        actor_id=actor,
        action="user.create_token",
        entity="user",
        entity_id=user.id,
        details={"scopes": sorted(set(scopes)), "expires_at": issued.expires_at.isoformat()},
    )
    session.commit()
    return issued


def token_expiry(*, session: Session, token: str) -> dt.datetime:
    """When a token issued here expires (for the command line to print)."""
    expires_at: dt.datetime = session.execute(
        select(col(ApiToken.expires_at)).where(col(ApiToken.token_hash) == hash_token(token))
    ).scalar_one()
    return expires_at


def set_password(*, session: Session, username: str, password: str, actor: str = "cli") -> None:
    """Set (or replace) a user's password, hashed with Argon2id."""
    if not 12 <= len(password) <= 256:
        raise InvalidInput("a password must be 12 to 256 characters long")
    user = _user(session, username)
    user.password_hash = hash_password(password)
    session.add(user)
    audit.append(
        session,
        actor_type=_actor_type(actor),
        actor_id=actor,
        action="user.set_password",
        entity="user",
        entity_id=user.id,
    )
    session.commit()


def login(
    *, session: Session, username: str, password: str, ttl: dt.timedelta
) -> tuple[str, dt.datetime]:
    """Exchange a username and password for a short-lived bearer token.

    Unknown users and wrong passwords take the same time and get the same answer.
    """
    user = session.execute(
        select(AppUser).where(col(AppUser.username) == username)
    ).scalar_one_or_none()
    stored = user.password_hash if user is not None and user.disabled_at is None else None
    if not verify_password(stored, password) or user is None:
        raise Unauthenticated("invalid username or password")
    issued = issue_token(session=session, user=user, ttl=ttl, name="login")
    audit.append(session, actor_type="user", actor_id=f"user:{user.id}", action="user.login")
    session.commit()
    return issued.token, issued.expires_at


def revoke_token(*, session: Session, token_hash: str) -> None:
    session.execute(
        update(ApiToken)
        .where(col(ApiToken.token_hash) == token_hash, col(ApiToken.revoked_at).is_(None))
        .values(revoked_at=utcnow())
    )
    session.commit()


# --------------------------------------------------------------------------- admin controls


def list_users(*, session: Session, filters: UserFilters) -> Page[UserPublic]:
    """Every user, oldest first, with their camps and live-token counts."""
    query = select(AppUser)
    if filters.cursor is not None:
        query = query.where(
            after_time_and_id("users", filters.cursor, col(AppUser.created_at), col(AppUser.id))
        )
    users = list(
        session.execute(
            query.order_by(col(AppUser.created_at), col(AppUser.id)).limit(filters.limit + 1)
        ).scalars()
    )
    page = page_of(users, filters.limit, "users", lambda u: (u.created_at, u.id))
    return Page(_public(session, page.items), page.next_cursor)


def revoke_user_tokens(*, session: Session, username: str, actor: str) -> int:
    """Revoke every live token of a user at once; returns how many were revoked."""
    user = _user(session, username)
    now = utcnow()
    result = session.execute(
        update(ApiToken)
        .where(
            col(ApiToken.user_id) == user.id,
            col(ApiToken.revoked_at).is_(None),
            col(ApiToken.expires_at) > now,
        )
        .values(revoked_at=now)
    )
    revoked: int = result.rowcount  # type: ignore[attr-defined]
    audit.append(
        session,
        actor_type=_actor_type(actor),
        actor_id=actor,
        action="user.revoke_tokens",
        entity="user",
        entity_id=user.id,
        details={"revoked": revoked},
    )
    session.commit()
    return revoked


def disable_user(
    *, session: Session, username: str, principal: Principal | None, actor: str
) -> UserPublic:
    """Disable a user: their tokens stop working at once and login is refused.

    Nothing is revoked, so enabling the user again restores their unexpired tokens.
    """
    user = _user(session, username)
    if principal is not None and principal.user_id == user.id:
        # The last admin could lock everyone out of the API this way.
        raise ConflictError("you cannot disable yourself; another admin or the command line can")
    return _set_disabled(session, user, utcnow(), actor)


def enable_user(*, session: Session, username: str, actor: str) -> UserPublic:
    """Enable a disabled user: their unrevoked, unexpired tokens work again."""
    return _set_disabled(session, _user(session, username), None, actor)


def _set_disabled(
    session: Session, user: AppUser, disabled_at: dt.datetime | None, actor: str
) -> UserPublic:
    changed = (user.disabled_at is None) != (disabled_at is None)
    if changed:
        user.disabled_at = disabled_at
        session.add(user)
    audit.append(
        session,
        actor_type=_actor_type(actor),
        actor_id=actor,
        action="user.disable" if disabled_at is not None else "user.enable",
        entity="user",
        entity_id=user.id,
        details={"changed": changed},
    )
    session.commit()
    return _public(session, [user])[0]


def _public(session: Session, users: Sequence[AppUser]) -> list[UserPublic]:
    ids = [u.id for u in users]
    if not ids:
        return []
    camps: dict[uuid.UUID, list[str]] = {}
    for user_id, camp_id in session.execute(
        select(col(UserCamp.user_id), col(UserCamp.camp_id))
        .where(col(UserCamp.user_id).in_(ids))
        .order_by(col(UserCamp.camp_id))
    ):
        camps.setdefault(user_id, []).append(camp_id)
    live: dict[uuid.UUID, int] = dict(
        session.execute(
            select(col(ApiToken.user_id), func.count())
            .where(
                col(ApiToken.user_id).in_(ids),
                col(ApiToken.revoked_at).is_(None),
                col(ApiToken.expires_at) > utcnow(),
            )
            .group_by(col(ApiToken.user_id))
        ).all()
    )
    return [
        UserPublic(
            id=u.id,
            username=u.username,
            role=u.role,
            all_camps=u.all_camps,
            camps=camps.get(u.id, []),
            has_password=u.password_hash is not None,
            created_at=u.created_at,
            disabled_at=u.disabled_at,
            live_tokens=live.get(u.id, 0),
        )
        for u in users
    ]
