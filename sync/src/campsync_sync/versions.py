"""Protocol, schema and envelope versions, and the hard limits every peer enforces."""

from __future__ import annotations

from typing import Final

__all__ = [
    "ENVELOPE_VERSION",
    "HARD_MAX_ENVELOPE_BYTES",
    "HARD_MAX_OPERATIONS",
    "HARD_MAX_PLAINTEXT_BYTES",
    "PROTOCOL_VERSION",
    "SCHEMA_VERSION",
    "SUPPORTED_SCHEMA_VERSIONS",
]

PROTOCOL_VERSION: Final = 1
"""Version of the message shapes (batch, receipt, pull page, enrolment)."""

SCHEMA_VERSION: Final = 1
"""Version of the domain catalogue (entities, fields, enumerations)."""

SUPPORTED_SCHEMA_VERSIONS: Final = frozenset({1})
"""Schema versions a receiver upcasts and accepts."""

ENVELOPE_VERSION: Final = 1
"""Version of the sealed binary envelope layout."""

HARD_MAX_ENVELOPE_BYTES: Final = 8 * 1024 * 1024
"""No envelope is ever larger than this, whatever a deployment configures."""

HARD_MAX_PLAINTEXT_BYTES: Final = 32 * 1024 * 1024
"""No envelope ever decompresses to more than this."""

HARD_MAX_OPERATIONS: Final = 5000
"""No batch ever holds more operations than this."""
