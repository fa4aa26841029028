"""The public surface of campsync_sync: exact names, importable, consistent across modules."""

from __future__ import annotations

import importlib
import pkgutil
import tomllib
from pathlib import Path

import campsync_sync

PUBLIC = [
    "ALL_SUITES", "DEFAULT_SUITE", "ENTITY_FIELDS", "ENVELOPE_VERSION", "ERROR_STATUS",
    "EVENT_ENTITIES", "HARD_MAX_ENVELOPE_BYTES", "HARD_MAX_OPERATIONS", "HARD_MAX_PLAINTEXT_BYTES",
    "HLC", "NAME_FIELDS", "PROTOCOL_VERSION", "REGISTRY_ENTITIES", "SCHEMA_VERSION",
    "SUPPORTED_SCHEMA_VERSIONS",
    "BadEnvelope", "BadPlaintext", "BadSignature", "Batch", "BatchStatus", "ChallengeRequest",
    "ChallengeResponse", "Clock", "Conflict", "DecryptionFailed", "DeleteOp", "DeviceToken",
    "EnrollmentInvite", "EnrollmentRequest", "EnrollmentResponse", "Entity", "EnvelopeError",
    "EnvelopeHeader", "ErrorBody", "ErrorCode", "ErrorDetail", "EventState", "FieldError",
    "FieldSpec", "FieldWrite", "Flag", "HLCError", "KeyDestroyed", "KeyInfo", "KeyKind",
    "KeyManifest", "KeyResolver", "OpEffect", "OpResult", "OpenedEnvelope", "Operation", "Outcome",
    "PatchOp", "ProtocolError", "PullPage", "Receipt", "RecordState", "ReferralOp", "RejectReason",
    "Rejected", "RestoreOp", "RowState", "SealedEnvelope", "ServiceOp", "SetChange", "SetElement",
    "SignedManifest", "Suite", "SuiteNotAllowed", "TokenRequest", "TooLarge", "TooManyOperations",
    "TransportKeyPair", "UnknownKey", "UnsupportedVersion", "VoidOp", "WrongDeployment",
    "__version__", "apply_event_op", "apply_registry_op", "apply_void", "b64decode", "b64encode",
    "clamp", "decode_batch", "decode_message", "double_distribution", "enrollment_proof_message",
    "event_state_of", "field_spec", "fingerprint", "fold", "identity_fields", "join", "key_id",
    "latest_clock",
    "load_signing_public", "load_transport_public", "name_key", "name_keys", "node_id_for",
    "normalize_operation", "op_state", "open_envelope", "parse_envelope", "parse_operation",
    "pii_fields", "read_operation", "record_state_from_row", "record_state_to_row", "seal",
    "set_fields", "sign_manifest", "sign_statement", "signing_public_bytes", "similarity",
    "token_message", "uuid7", "validate_element", "validate_field", "verify_manifest",
    "verify_statement", "wipe_statement",
]  # fmt: skip

MODULES = [
    "envelope", "errors", "events", "fields", "hlc", "ids", "keys", "merge", "names",
    "operations", "outcomes", "versions", "wire",
]  # fmt: skip


def test_the_package_exports_exactly_its_public_names() -> None:
    assert campsync_sync.__all__ == PUBLIC
    for name in PUBLIC:
        assert getattr(campsync_sync, name) is not None


def test_every_module_is_public_and_its_all_is_consistent() -> None:
    found = sorted(m.name for m in pkgutil.iter_modules(campsync_sync.__path__))
    assert found == MODULES
    exported_by: dict[str, str] = {}
    for module_name in MODULES:
        module = importlib.import_module(f"campsync_sync.{module_name}")
        assert len(set(module.__all__)) == len(module.__all__)
        for name in module.__all__:
            assert hasattr(module, name), f"{module_name}.{name}"
            exported_by.setdefault(name, module_name)
    for name in PUBLIC:
        if name == "__version__":
            continue
        assert name in exported_by, f"{name} is in the package but in no module's __all__"
        module = importlib.import_module(f"campsync_sync.{exported_by[name]}")
        assert getattr(campsync_sync, name) is getattr(module, name)


def test_the_version_matches_the_distribution() -> None:
    meta = tomllib.loads((Path(__file__).parents[2] / "sync" / "pyproject.toml").read_text())
    assert campsync_sync.__version__ == meta["project"]["version"]
    assert (Path(campsync_sync.__file__).parent / "py.typed").exists()
