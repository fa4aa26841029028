"""Error codes, the wire error body, and the typed errors raised by the protocol.

Every non-2xx HTTP answer of a campsync server carries :class:`ErrorBody`::

    {"error": {"code": "seq_gap", "message": "...", "details": {"expected_seq": 7}}}

``ErrorCode`` is the one catalogue of codes. Codes are stable: clients branch on them, so a
code is never renamed or reused. ``ERROR_STATUS`` gives each code's HTTP status; the table in
``docs/protocol.md`` mirrors it and a test keeps the two in step.

The typed errors, each carrying its code and so its HTTP status::

    ProtocolError
    └── EnvelopeError          bad_envelope        400  magic, framing, header, type
        ├── TooLarge           envelope_too_large  413  size caps, decompression bomb
        ├── UnsupportedVersion unsupported_version 400  envelope, protocol or schema version
        ├── SuiteNotAllowed    suite_not_allowed   400  suite unknown or not on the allow-list
        ├── WrongDeployment    wrong_deployment    400  sealed for another deployment
        ├── UnknownKey         unknown_key         400  sender or recipient key not known
        ├── KeyDestroyed       key_destroyed       410  recipient key destroyed: re-seal
        ├── BadSignature       bad_signature       400  signature does not verify
        ├── DecryptionFailed   decryption_failed   400  HPKE open failed
        ├── BadPlaintext       bad_plaintext       400  body does not decompress or parse
        └── TooManyOperations  too_many_operations 413  batch over the operation limit

``BadEnvelope`` is ``EnvelopeError`` with the same code, raised for the first row.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from pydantic import BaseModel, ConfigDict, JsonValue

__all__ = [
    "ERROR_STATUS",
    "BadEnvelope",
    "BadPlaintext",
    "BadSignature",
    "DecryptionFailed",
    "EnvelopeError",
    "ErrorBody",
    "ErrorCode",
    "ErrorDetail",
    "KeyDestroyed",
    "ProtocolError",
    "SuiteNotAllowed",
    "TooLarge",
    "TooManyOperations",
    "UnknownKey",
    "UnsupportedVersion",
    "WrongDeployment",
]


class ErrorCode(StrEnum):
    """Stable error codes; see ``ERROR_STATUS`` for each code's HTTP status."""

    # Generic HTTP
    BAD_REQUEST = "bad_request"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    VALIDATION_ERROR = "validation_error"
    RATE_LIMITED = "rate_limited"
    INTERNAL_ERROR = "internal_error"
    SERVICE_UNAVAILABLE = "service_unavailable"
    REQUEST_TIMEOUT = "request_timeout"
    # Envelope (whole-batch) failures, in the order a receiver checks them
    BAD_ENVELOPE = "bad_envelope"
    UNSUPPORTED_VERSION = "unsupported_version"
    SUITE_NOT_ALLOWED = "suite_not_allowed"
    WRONG_DEPLOYMENT = "wrong_deployment"
    UNKNOWN_KEY = "unknown_key"
    KEY_DESTROYED = "key_destroyed"
    ENVELOPE_TOO_LARGE = "envelope_too_large"
    BAD_SIGNATURE = "bad_signature"
    DECRYPTION_FAILED = "decryption_failed"
    BAD_PLAINTEXT = "bad_plaintext"
    TOO_MANY_OPERATIONS = "too_many_operations"
    # Sync
    DEVICE_UNKNOWN = "device_unknown"
    DEVICE_REVOKED = "device_revoked"
    BATCH_MISMATCH = "batch_mismatch"
    BATCH_IN_FLIGHT = "batch_in_flight"
    SEQ_GAP = "seq_gap"
    SEQ_REUSED = "seq_reused"
    RECEIPT_NOT_FOUND = "receipt_not_found"
    CURSOR_INVALID = "cursor_invalid"
    ENROLLMENT_CODE_INVALID = "enrollment_code_invalid"
    PROOF_INVALID = "proof_invalid"
    # Coordinator API
    ALREADY_EXISTS = "already_exists"
    ALREADY_RESOLVED = "already_resolved"


ERROR_STATUS: Final[dict[ErrorCode, int]] = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.CONFLICT: 409,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.VALIDATION_ERROR: 422,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.INTERNAL_ERROR: 500,
    ErrorCode.SERVICE_UNAVAILABLE: 503,
    ErrorCode.REQUEST_TIMEOUT: 503,
    ErrorCode.BAD_ENVELOPE: 400,
    ErrorCode.UNSUPPORTED_VERSION: 400,
    ErrorCode.SUITE_NOT_ALLOWED: 400,
    ErrorCode.WRONG_DEPLOYMENT: 400,
    ErrorCode.UNKNOWN_KEY: 400,
    ErrorCode.KEY_DESTROYED: 410,
    ErrorCode.ENVELOPE_TOO_LARGE: 413,
    ErrorCode.BAD_SIGNATURE: 400,
    ErrorCode.DECRYPTION_FAILED: 400,
    ErrorCode.BAD_PLAINTEXT: 400,
    ErrorCode.TOO_MANY_OPERATIONS: 413,
    ErrorCode.DEVICE_UNKNOWN: 401,
    ErrorCode.DEVICE_REVOKED: 403,
    ErrorCode.BATCH_MISMATCH: 422,
    ErrorCode.BATCH_IN_FLIGHT: 409,
    ErrorCode.SEQ_GAP: 409,
    ErrorCode.SEQ_REUSED: 409,
    ErrorCode.RECEIPT_NOT_FOUND: 404,
    ErrorCode.CURSOR_INVALID: 400,
    ErrorCode.ENROLLMENT_CODE_INVALID: 400,
    ErrorCode.PROOF_INVALID: 400,
    ErrorCode.ALREADY_EXISTS: 409,
    ErrorCode.ALREADY_RESOLVED: 409,
}


class ErrorDetail(BaseModel):
    """The inside of an error body: a stable code, a human message, optional details."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: ErrorCode
    message: str
    details: JsonValue = None


class ErrorBody(BaseModel):
    """The JSON body of every non-2xx answer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    error: ErrorDetail

    @classmethod
    def of(cls, code: ErrorCode, message: str, details: JsonValue = None) -> ErrorBody:
        """Build a body from its parts."""
        return cls(error=ErrorDetail(code=code, message=message, details=details))


class ProtocolError(Exception):
    """Base of every error the protocol package raises; carries an :class:`ErrorCode`."""

    code: ErrorCode = ErrorCode.BAD_REQUEST

    @property
    def status(self) -> int:
        """The HTTP status a server answers with for this error."""
        return ERROR_STATUS[self.code]


class EnvelopeError(ProtocolError):
    """A sealed envelope could not be opened; nothing in it may be trusted."""

    code = ErrorCode.BAD_ENVELOPE


class BadEnvelope(EnvelopeError):
    """Bad magic, truncated framing or a malformed header."""


class UnsupportedVersion(EnvelopeError):
    """The envelope version is not one this receiver implements."""

    code = ErrorCode.UNSUPPORTED_VERSION


class SuiteNotAllowed(EnvelopeError):
    """The cipher suite is unknown or not on the receiver's allow-list."""

    code = ErrorCode.SUITE_NOT_ALLOWED


class WrongDeployment(EnvelopeError):
    """The envelope was sealed for another deployment."""

    code = ErrorCode.WRONG_DEPLOYMENT


class UnknownKey(EnvelopeError):
    """The sender's or the recipient's key id is not known to the receiver."""

    code = ErrorCode.UNKNOWN_KEY


class KeyDestroyed(EnvelopeError):
    """The recipient key existed but was destroyed; the sender must re-seal."""

    code = ErrorCode.KEY_DESTROYED


class TooLarge(EnvelopeError):
    """A size in the envelope exceeds a limit, or decompression would exceed it."""

    code = ErrorCode.ENVELOPE_TOO_LARGE


class BadSignature(EnvelopeError):
    """The sender's signature does not verify over header and ciphertext."""

    code = ErrorCode.BAD_SIGNATURE


class DecryptionFailed(EnvelopeError):
    """HPKE decryption failed: wrong key, altered ciphertext or altered header."""

    code = ErrorCode.DECRYPTION_FAILED


class BadPlaintext(EnvelopeError):
    """The decrypted body does not decompress to its declared length or does not parse."""

    code = ErrorCode.BAD_PLAINTEXT


class TooManyOperations(EnvelopeError):
    """A batch holds more operations than the receiver accepts."""

    code = ErrorCode.TOO_MANY_OPERATIONS
