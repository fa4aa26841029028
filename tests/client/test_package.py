from __future__ import annotations

import ast
import inspect
from pathlib import Path

import campsync_client

EXPECTED = {
    "AsyncTablet", "AuthError", "BatchRejected", "ClientError", "DeviceRevoked", "EditOutcome",
    "EnvelopeError", "Household", "Person", "RecordNotFound", "Referral", "RetryPolicy",
    "ServerError", "ServiceDelivery", "StoreError", "StoreExists", "StoreNotFound", "SyncError",
    "SyncProgress", "SyncReport", "Tablet", "TabletStatus", "TransportError", "UntrustedServer",
    "ValidationError", "Wiped", "WrongPin", "__version__",
}  # fmt: skip
SOURCE = Path(campsync_client.__file__).parent


def test_client_package_imports_without_the_server() -> None:
    assert campsync_client.__version__
    for path in SOURCE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                root = name.split(".")[0]
                assert root not in {"api", "fastapi", "starlette", "sqlalchemy", "sqlmodel"}, path


def test_public_names() -> None:
    assert set(campsync_client.__all__) == EXPECTED
    for name in campsync_client.__all__:
        assert hasattr(campsync_client, name)
    implementation = [p.name for p in SOURCE.glob("*.py") if not p.name.startswith("_")]
    assert implementation == []  # every module is private; the API is what __init__ exports


def test_public_api_is_documented() -> None:
    for name in campsync_client.__all__:
        obj = getattr(campsync_client, name)
        if inspect.isclass(obj):
            assert obj.__doc__, name
            for member, value in vars(obj).items():
                if not member.startswith("_") and callable(value):
                    assert inspect.getdoc(value), f"{name}.{member}"
    local = {
        "register_household", "add_person", "update_household", "update_person", "add_needs",
        "remove_needs", "delete_household", "delete_person", "record_service", "record_referral",
        "void_service", "households", "household", "person", "services", "referrals", "search",
        "pending", "conflicts", "status", "export_batches", "change_pin",
    }  # fmt: skip
    for cls in (campsync_client.Tablet, campsync_client.AsyncTablet):
        for name in local | {"enroll", "open", "sync"}:
            assert inspect.getdoc(getattr(cls, name)), f"{cls.__name__}.{name}"
    assert inspect.iscoroutinefunction(campsync_client.AsyncTablet.sync)


def test_error_hierarchy() -> None:
    c = campsync_client
    assert issubclass(c.TransportError, c.SyncError)
    assert issubclass(c.AuthError, c.ServerError)
    assert issubclass(c.BatchRejected, c.ServerError)
    assert issubclass(c.DeviceRevoked, c.AuthError)
    assert issubclass(c.EnvelopeError, c.SyncError)
    assert issubclass(c.SyncError, c.ClientError)
    assert issubclass(c.WrongPin, c.StoreError)
    assert issubclass(c.Wiped, c.StoreError)
    assert issubclass(c.ValidationError, ValueError)
    assert issubclass(c.RecordNotFound, LookupError)
