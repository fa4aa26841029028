"""The authenticated caller, as services see it: role, camp scope, extra scopes.

Camp scope is checked on every object through :meth:`Principal.require_camp`, which answers
404 for a camp the caller may not see, so that ids of other camps cannot be probed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum

from api.errors import NotFound


class Role(StrEnum):
    ADMIN = "admin"
    COORDINATOR = "coordinator"
    INTEGRATOR = "integrator"


class Scope(StrEnum):
    PII_READ = "pii:read"
    """Integrators: read personal fields (coordinators and admins read them by role)."""
    PII_EXPORT = "pii:export"
    """Anyone: export personal columns."""


@dataclass(frozen=True)
class Principal:
    user_id: uuid.UUID
    username: str
    role: Role
    camps: frozenset[str] | None
    """Camps the caller may see; ``None`` means all camps."""
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def actor(self) -> str:
        return f"user:{self.user_id}"

    def sees_camp(self, camp_id: str) -> bool:
        return self.camps is None or camp_id in self.camps

    def require_camp(self, camp_id: str, *, what: str = "camp") -> None:
        if not self.sees_camp(camp_id):
            raise NotFound(f"{what} not found")

    @property
    def reads_pii(self) -> bool:
        return self.role in (Role.ADMIN, Role.COORDINATOR) or Scope.PII_READ in self.scopes

    @property
    def exports_pii(self) -> bool:
        return Scope.PII_EXPORT in self.scopes
