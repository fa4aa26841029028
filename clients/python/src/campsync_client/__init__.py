"""campsync_client: the reference offline client of campsync.

Enrol a tablet once, then register households, record services and sync when a connection
appears::

    from campsync_client import Tablet

    tablet = Tablet.enroll("https://campsync.example.org", "K7F2-Q9XM", "tablet.db", pin="2468")
    household = tablet.register_household(
        {"given_name": "Mohammad", "family_name": "Karimi", "sex": "male", "birth_year": 1985},
        needs={"shelter", "food"},
    )
    report = tablet.sync()

Every personal field is encrypted at rest under a key derived from the PIN; batches are sealed
to the server and signed by the tablet; nothing personal is logged or put in an exception.
"""

from campsync_client._errors import (
    AuthError,
    BatchRejected,
    ClientError,
    DeviceRevoked,
    EnvelopeError,
    RecordNotFound,
    ServerError,
    StoreError,
    StoreExists,
    StoreNotFound,
    SyncError,
    TransportError,
    UntrustedServer,
    ValidationError,
    Wiped,
    WrongPin,
)
from campsync_client._http import RetryPolicy
from campsync_client._models import (
    EditOutcome,
    Household,
    Person,
    Referral,
    ServiceDelivery,
    SyncProgress,
    SyncReport,
    TabletStatus,
)
from campsync_client._tablet import AsyncTablet, Tablet
from campsync_client._version import __version__

__all__ = [
    "AsyncTablet",
    "AuthError",
    "BatchRejected",
    "ClientError",
    "DeviceRevoked",
    "EditOutcome",
    "EnvelopeError",
    "Household",
    "Person",
    "RecordNotFound",
    "Referral",
    "RetryPolicy",
    "ServerError",
    "ServiceDelivery",
    "StoreError",
    "StoreExists",
    "StoreNotFound",
    "SyncError",
    "SyncProgress",
    "SyncReport",
    "Tablet",
    "TabletStatus",
    "TransportError",
    "UntrustedServer",
    "ValidationError",
    "Wiped",
    "WrongPin",
    "__version__",
]
