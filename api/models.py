"""Every table, imported in one place so that ``SQLModel.metadata`` is complete."""

from api import types as _types  # noqa: F401  (sets the naming convention first)
from api.audit.models import AuditLog
from api.camps.models import Camp
from api.devices.models import Device, EnrollmentCode
from api.registry.models import (
    ChangeLog,
    Conflict,
    Flag,
    Household,
    Person,
    Referral,
    ServiceDelivery,
)
from api.sync.models import Batch, Quarantine, ServerKey, ServerMeta, SyncCounter
from api.users.models import ApiToken, AppUser, UserCamp

__all__ = [
    "ApiToken",
    "AppUser",
    "AuditLog",
    "Batch",
    "Camp",
    "ChangeLog",
    "Conflict",
    "Device",
    "EnrollmentCode",
    "Flag",
    "Household",
    "Person",
    "Quarantine",
    "Referral",
    "ServerKey",
    "ServerMeta",
    "ServiceDelivery",
    "SyncCounter",
    "UserCamp",
]
