"""HTTP authentication and route policies. Deny by default.

Every route declares a :class:`Policy` as a dependency; ``tests/api/test_authz.py`` walks the
app's routes and fails if one has none. A policy authenticates the caller, checks the role
and the scopes, and hands the route a :class:`Principal`. Camp scope is checked on every
object by the services through :meth:`Principal.require_camp`, which answers 404 for a camp
the caller may not see, so that ids of other camps cannot be probed.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col

from api.deps import KeyringDep, SessionDep
from api.devices import tokens as device_tokens
from api.devices.models import Device
from api.errors import Forbidden, Unauthenticated
from api.principal import Principal, Role, Scope
from api.security import hash_token
from api.types import utcnow
from api.users.models import ApiToken, AppUser, UserCamp

bearer_scheme = HTTPBearer(auto_error=False)


def authenticate_token(session: Session, token: str) -> Principal:
    now = utcnow()
    row = session.execute(
        select(ApiToken, AppUser)
        .join(AppUser, col(AppUser.id) == col(ApiToken.user_id))
        .where(col(ApiToken.token_hash) == hash_token(token))
    ).first()
    if row is None:
        raise Unauthenticated("invalid or expired token", headers={"WWW-Authenticate": "Bearer"})
    api_token, user = row
    if (
        api_token.revoked_at is not None
        or (api_token.expires_at is not None and api_token.expires_at <= now)
        or user.disabled_at is not None
    ):
        raise Unauthenticated("invalid or expired token", headers={"WWW-Authenticate": "Bearer"})
    camps: frozenset[str] | None = None
    if not (user.role == Role.ADMIN or user.all_camps):
        camps = frozenset(
            session.execute(
                select(col(UserCamp.camp_id)).where(col(UserCamp.user_id) == user.id)
            ).scalars()
        )
    _touch(session, api_token, now)
    return Principal(user.id, user.username, Role(user.role), camps, frozenset(api_token.scopes))


def _touch(session: Session, api_token: ApiToken, now: dt.datetime) -> None:
    # Recording last use at most once a minute keeps reads from becoming writes.
    # Best effort: a busy database must not turn a read into a failure.
    last = api_token.last_used_at
    if last is None or now - last > dt.timedelta(minutes=1):
        try:
            session.execute(
                update(ApiToken).where(col(ApiToken.id) == api_token.id).values(last_used_at=now)
            )
            session.commit()
        except OperationalError:
            session.rollback()


class Policy:
    """A route's authorisation rule, used as a FastAPI dependency."""

    def __init__(self, *roles: Role, scopes: tuple[Scope, ...] = (), public: bool = False):
        self.roles = frozenset(roles)
        self.scopes = frozenset(scopes)
        self.public = public

    def __repr__(self) -> str:
        if self.public:
            return "Policy(public)"
        return f"Policy(roles={sorted(self.roles)}, scopes={sorted(self.scopes)})"

    def __call__(
        self,
        session: SessionDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    ) -> Principal | None:
        if self.public:
            return None
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise Unauthenticated("authentication required", headers={"WWW-Authenticate": "Bearer"})
        principal = authenticate_token(session, credentials.credentials)
        if self.roles and principal.role not in self.roles:
            raise Forbidden("your role does not allow this")
        if not self.scopes <= principal.scopes:
            raise Forbidden(
                "a scope this needs is missing", {"required": [str(s) for s in sorted(self.scopes)]}
            )
        return principal


class _PublicPolicy(Policy):
    # No bearer dependency, so the OpenAPI description does not claim these routes need a token.
    def __call__(self) -> None:  # type: ignore[override]
        return None


PUBLIC: Policy = _PublicPolicy(public=True)
"""For routes anyone may call (health checks, enrolment with a one-time code, signed sync
requests that authenticate themselves)."""
ANY_USER = Policy(Role.ADMIN, Role.COORDINATOR, Role.INTEGRATOR)
ADMIN = Policy(Role.ADMIN)
STAFF = Policy(Role.ADMIN, Role.COORDINATOR)

AnyUser = Annotated[Principal, Depends(ANY_USER)]
Admin = Annotated[Principal, Depends(ADMIN)]
Staff = Annotated[Principal, Depends(STAFF)]
Public = Depends(PUBLIC)


class DeviceAuth:
    """Authenticates a tablet by its short-lived device token (``docs/sync-http.md``).

    Routes that use it declare the ``Public`` policy (no user) and this dependency; the
    authorisation test finds it and checks that anonymous calls answer 401.
    """

    def __repr__(self) -> str:
        return "DeviceAuth()"

    def __call__(
        self,
        session: SessionDep,
        keyring: KeyringDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    ) -> Device:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise Unauthenticated(
                "a device token is required", headers={"WWW-Authenticate": "Bearer"}
            )
        return device_tokens.authenticate_device(
            session=session, keys=keyring.current(), token=credentials.credentials
        )


DEVICE = DeviceAuth()
CurrentDevice = Annotated[Device, Depends(DEVICE)]
