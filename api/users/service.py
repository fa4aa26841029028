from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select, update
from sqlmodel import Session, col

from api.audit import service as audit
from api.camps.models import Camp
from api.errors import AlreadyExists, InvalidInput, NotFound, Unauthenticated
from api.principal import Role, Scope
from api.security import hash_password, hash_token, new_token, verify_password
from api.types import utcnow
from api.users.models import ApiToken, AppUser, UserCamp


def create_user(
    *,
    session: Session,
    username: str,
    role: str,
    camps: Sequence[str] = (),
    all_camps: bool = False,
    scopes: Sequence[str] = (),
    password: str | None = None,
    token_ttl: dt.timedelta | None = None,
    actor: str = "cli",
) -> tuple[AppUser, str]:
    """Create a user and a first API token; returns the user and the token (shown once)."""
    try:
        role_value = Role(role)
    except ValueError:
        raise InvalidInput(
            f"unknown role {role!r}: choose admin, coordinator or integrator"
        ) from None
    unknown_scopes = sorted(set(scopes) - {s.value for s in Scope})
    if unknown_scopes:
        raise InvalidInput(f"unknown scope {unknown_scopes[0]!r}")
    if (
        not 1 <= len(username) <= 64
        or not username.replace("-", "").replace("_", "").replace(".", "").isalnum()
    ):
        raise InvalidInput("username must be 1-64 letters, digits, '.', '-' or '_'")
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
    token = issue_token(session=session, user=user, scopes=scopes, ttl=token_ttl)
    audit.append(
        session,
        actor_type="user" if actor.startswith("user:") else "system",
        actor_id=actor,
        action="user.create",
        entity="user",
        entity_id=user.id,
        details={"role": role_value.value, "camps": sorted(set(camps)), "scopes": sorted(scopes)},
    )
    session.commit()
    return user, token


def issue_token(
    *,
    session: Session,
    user: AppUser,
    scopes: Sequence[str] = (),
    ttl: dt.timedelta | None = None,
    name: str | None = None,
) -> str:
    token = new_token()
    session.add(
        ApiToken(
            user_id=user.id,
            token_hash=hash_token(token),
            name=name,
            scopes=sorted(set(scopes)),
            expires_at=utcnow() + ttl if ttl else None,
        )
    )
    session.flush()
    return token


def set_password(*, session: Session, username: str, password: str, actor: str = "cli") -> None:
    """Set (or replace) a user's password, hashed with Argon2id."""
    if not 12 <= len(password) <= 256:
        raise InvalidInput("a password must be 12 to 256 characters long")
    user = session.execute(
        select(AppUser).where(col(AppUser.username) == username)
    ).scalar_one_or_none()
    if user is None:
        raise NotFound(f"user {username!r} does not exist")
    user.password_hash = hash_password(password)
    session.add(user)
    audit.append(
        session,
        actor_type="user" if actor.startswith("user:") else "system",
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
    token = issue_token(session=session, user=user, ttl=ttl, name="login")
    audit.append(session, actor_type="user", actor_id=f"user:{user.id}", action="user.login")
    session.commit()
    return token, utcnow() + ttl


def revoke_token(*, session: Session, token_hash: str) -> None:
    session.execute(
        update(ApiToken)
        .where(col(ApiToken.token_hash) == token_hash, col(ApiToken.revoked_at).is_(None))
        .values(revoked_at=utcnow())
    )
    session.commit()
