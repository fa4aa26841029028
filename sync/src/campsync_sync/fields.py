"""The domain catalogue: entities, their fields, and how each field is validated and merged.

Registry entities (``household``, ``person``) are edited field by field and merged with
per-field clocks. Event entities (``service_delivery``, ``referral``) are insert-only.

Values travel and are stored in their JSON form (a date is ``"2026-11-26"``), so the merge
rules compare plain JSON values. :func:`validate_field` turns whatever a tablet sent into
that normal form, or raises :class:`FieldError`; the client calls it when an operator types
a value, the server calls it on every incoming operation.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

__all__ = [
    "ARRIVAL_TYPES",
    "DEFAULT_ENTITLEMENT_DAYS",
    "DELETE_REASONS",
    "DOCUMENT_TYPES",
    "ENTITY_FIELDS",
    "EVENT_ENTITIES",
    "NEEDS",
    "PERSON_STATUSES",
    "RECORD_STATUSES",
    "REFERRAL_CATEGORIES",
    "REFERRAL_STATUSES",
    "REFERRAL_URGENCIES",
    "REGISTRY_ENTITIES",
    "RELATIONSHIPS",
    "SERVICES",
    "SEXES",
    "SHELTER_STATUSES",
    "VOID_REASONS",
    "VULNERABILITIES",
    "Entity",
    "FieldError",
    "FieldSpec",
    "field_spec",
    "identity_fields",
    "pii_fields",
    "set_fields",
    "validate_element",
    "validate_field",
]


class Entity(StrEnum):
    """Every entity a tablet can write."""

    HOUSEHOLD = "household"
    PERSON = "person"
    SERVICE_DELIVERY = "service_delivery"
    REFERRAL = "referral"


REGISTRY_ENTITIES: Final = frozenset({Entity.HOUSEHOLD, Entity.PERSON})
EVENT_ENTITIES: Final = frozenset({Entity.SERVICE_DELIVERY, Entity.REFERRAL})

ARRIVAL_TYPES: Final = ("deported", "voluntary", "other")
SHELTER_STATUSES: Final = ("none", "tent_assigned", "host_family", "other")
NEEDS: Final = (
    "shelter",
    "food",
    "health",
    "nfi",
    "wash",
    "protection",
    "transport",
    "cash",
    "education",
)
VULNERABILITIES: Final = (
    "unaccompanied_child",
    "separated_child",
    "female_headed_household",
    "child_headed_household",
    "older_person_alone",
    "disability",
    "serious_medical_condition",
    "chronic_illness",
    "pregnant_or_lactating",
    "survivor_of_violence",
    "single_parent",
    "mental_health",
)
RECORD_STATUSES: Final = ("active", "departed", "merged")
PERSON_STATUSES: Final = ("active", "departed", "merged", "deceased")
RELATIONSHIPS: Final = (
    "head",
    "spouse",
    "child",
    "parent",
    "sibling",
    "grandchild",
    "grandparent",
    "other_relative",
    "unrelated",
)
SEXES: Final = ("female", "male", "other", "unknown")
DOCUMENT_TYPES: Final = ("por_card", "acc", "tazkira", "passport", "none")
SERVICES: Final = (
    "food_ration",
    "shelter_kit",
    "tent",
    "nfi_kit",
    "hygiene_kit",
    "winterization_kit",
    "health_consultation",
    "vaccination",
    "nutrition_supplement",
    "psychosocial_support",
    "legal_assistance",
    "cash_grant",
    "transport",
)
REFERRAL_CATEGORIES: Final = ("health", "protection", "nutrition", "other")
REFERRAL_URGENCIES: Final = ("low", "medium", "high", "emergency")
REFERRAL_STATUSES: Final = ("open", "in_progress", "closed")
DELETE_REASONS: Final = ("duplicate", "registered_in_error", "withdrawn", "other")
VOID_REASONS: Final = ("recorded_in_error", "duplicate", "not_delivered", "other")

# Days within which a second delivery of the same service to the same household is flagged
# as a possible double distribution. Services absent here (consultations, vaccinations...)
# are never flagged: receiving them twice is normal. Servers may override these.
DEFAULT_ENTITLEMENT_DAYS: Final[Mapping[str, int]] = {
    "food_ration": 14,
    "shelter_kit": 180,
    "tent": 180,
    "nfi_kit": 90,
    "hygiene_kit": 30,
    "winterization_kit": 180,
    "nutrition_supplement": 7,
    "cash_grant": 30,
    "transport": 30,
}

_PHONE = re.compile(r"\A\+?[0-9]{6,20}\Z")
_PHONE_SEPARATORS = str.maketrans("", "", " -.()")
_DOCUMENT = re.compile(r"\A[0-9A-Z/\-]{1,40}\Z")
_MAX_TEXT = 120
# Embedding, override and isolate controls reorder what a coordinator sees ("Trojan Source");
# the joiners and marks Persian and Pashto need (ZWNJ, ZWJ, LRM, RLM) are allowed.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class FieldError(ValueError):
    """A value is not valid for its field; ``reason`` is a short machine-readable code."""

    def __init__(self, field: str, reason: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = reason


Validator = Callable[[str, Any], Any]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """How one field is validated and merged.

    Attributes:
        name: the field name on the wire and in storage.
        validate: turns a wire value into its normal JSON form or raises FieldError.
        identity: a concurrent clash with different values opens a conflict record.
        pii: personal data; never logged, exported only with the personal-data scope.
        elements: for set fields, the allowed elements; ``None`` for scalar fields.
        nullable: ``None`` clears the field.
    """

    name: str
    validate: Validator
    identity: bool = False
    pii: bool = False
    elements: tuple[str, ...] | None = None
    nullable: bool = True

    @property
    def is_set(self) -> bool:
        """Whether the field is a set merged per element."""
        return self.elements is not None


def _text(limit: int = _MAX_TEXT) -> Validator:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise FieldError(name, "invalid_type", "must be a string")
        cleaned = unicodedata.normalize("NFC", " ".join(value.split()))
        if not cleaned:
            raise FieldError(name, "empty", "must not be blank")
        if len(cleaned) > limit:
            raise FieldError(name, "too_long", f"must be at most {limit} characters")
        # isprintable() is false for every control (and for the format characters Persian
        # needs), so only such text pays for the character-by-character check.
        if not cleaned.isprintable() and any(
            ch in _BIDI_CONTROLS or unicodedata.category(ch) in ("Cc", "Cs") for ch in cleaned
        ):
            raise FieldError(name, "invalid_value", "must not contain control characters")
        return cleaned

    return check


def _choice(options: tuple[str, ...]) -> Validator:
    def check(name: str, value: Any) -> str:
        if value not in options:
            raise FieldError(name, "invalid_choice", f"must be one of {', '.join(options)}")
        return str(value)

    return check


def _ascii_digits(text: str) -> str:
    # Tablets with Dari or Pashto keyboards type Persian digits (U+06F0..); store ASCII.
    if text.isascii():
        return text
    return "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() else ch for ch in text)


def _phone(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise FieldError(name, "invalid_type", "must be a string")
    cleaned = _ascii_digits(value.translate(_PHONE_SEPARATORS))
    if _PHONE.match(cleaned) is None:
        raise FieldError(name, "invalid_format", "must be a phone number of 6 to 20 digits")
    return cleaned


def _document(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise FieldError(name, "invalid_type", "must be a string")
    cleaned = _ascii_digits(value.replace(" ", "")).upper()
    if _DOCUMENT.match(cleaned) is None:
        raise FieldError(name, "invalid_format", "must be 1 to 40 letters, digits, '/' or '-'")
    return cleaned


def _date(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise FieldError(name, "invalid_type", "must be an ISO date string (YYYY-MM-DD)")
    try:
        parsed = dt.date.fromisoformat(value)
    except ValueError:
        raise FieldError(name, "invalid_format", "must be an ISO date (YYYY-MM-DD)") from None
    if not dt.date(1900, 1, 1) <= parsed <= dt.date(2100, 12, 31):
        raise FieldError(name, "out_of_range", "must be between 1900 and 2100")
    return parsed.isoformat()


def _year(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(name, "invalid_type", "must be an integer year")
    if not 1900 <= value <= 2100:
        raise FieldError(name, "out_of_range", "must be between 1900 and 2100")
    return value


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise FieldError(name, "invalid_type", "must be true or false")
    return value


_NORMAL_UUID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _uuid(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise FieldError(name, "invalid_type", "must be a UUID string")
    if _NORMAL_UUID.fullmatch(value):
        return value  # already in its normal form, which a match tells at a seventh of a parse
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise FieldError(name, "invalid_format", "must be a UUID") from None


def _set_field(name: str, elements: tuple[str, ...], *, pii: bool = False) -> FieldSpec:
    return FieldSpec(name, _choice(elements), pii=pii, elements=elements, nullable=False)


_NAME = _text(100)

HOUSEHOLD_FIELDS: Final = (
    FieldSpec("head_person_id", _uuid),
    FieldSpec("arrival_date", _date),
    FieldSpec("arrival_type", _choice(ARRIVAL_TYPES)),
    FieldSpec("crossing_point", _text(80)),
    FieldSpec("origin_country", _text(60)),
    FieldSpec("origin_location", _text()),
    FieldSpec("destination_province", _text(80)),
    FieldSpec("destination_district", _text(80)),
    FieldSpec("shelter_status", _choice(SHELTER_STATUSES)),
    FieldSpec("shelter_location", _text(80)),
    FieldSpec("phone", _phone, pii=True),
    FieldSpec("status", _choice(RECORD_STATUSES), nullable=False),
    _set_field("needs", NEEDS),
    _set_field("vulnerabilities", VULNERABILITIES),
)

PERSON_FIELDS: Final = (
    FieldSpec("household_id", _uuid, identity=True, nullable=False),
    FieldSpec("relationship_to_head", _choice(RELATIONSHIPS)),
    FieldSpec("given_name", _NAME, identity=True, pii=True),
    FieldSpec("family_name", _NAME, identity=True, pii=True),
    FieldSpec("father_name", _NAME, identity=True, pii=True),
    FieldSpec("given_name_local", _NAME, identity=True, pii=True),
    FieldSpec("family_name_local", _NAME, identity=True, pii=True),
    FieldSpec("father_name_local", _NAME, identity=True, pii=True),
    FieldSpec("sex", _choice(SEXES), identity=True),
    FieldSpec("date_of_birth", _date, identity=True, pii=True),
    FieldSpec("birth_year", _year, identity=True, pii=True),
    FieldSpec("dob_estimated", _bool),
    FieldSpec("document_type", _choice(DOCUMENT_TYPES), identity=True),
    FieldSpec("document_number", _document, identity=True, pii=True),
    FieldSpec("phone", _phone, pii=True),
    FieldSpec("status", _choice(PERSON_STATUSES), nullable=False),
    _set_field("vulnerabilities", VULNERABILITIES),
)

ENTITY_FIELDS: Final[Mapping[Entity, Mapping[str, FieldSpec]]] = {
    Entity.HOUSEHOLD: {spec.name: spec for spec in HOUSEHOLD_FIELDS},
    Entity.PERSON: {spec.name: spec for spec in PERSON_FIELDS},
}


def field_spec(entity: Entity, name: str) -> FieldSpec:
    """Return the spec of ``entity.name``.

    Raises:
        FieldError: ``unknown_field`` when the entity has no such field.
    """
    try:
        return ENTITY_FIELDS[entity][name]
    except KeyError:
        raise FieldError(name, "unknown_field", f"{entity} has no field {name!r}") from None


def validate_field(entity: Entity, name: str, value: Any) -> Any:
    """Validate a scalar field value and return its normal JSON form.

    Raises:
        FieldError: when the field is unknown, is a set field, or the value is invalid.
    """
    spec = field_spec(entity, name)
    if spec.is_set:
        raise FieldError(name, "set_field", "is a set: add or remove elements instead")
    if value is None:
        if not spec.nullable:
            raise FieldError(name, "required", "cannot be cleared")
        return None
    return spec.validate(name, value)


def validate_element(entity: Entity, name: str, element: Any) -> str:
    """Validate one element of a set field.

    Raises:
        FieldError: when the field is unknown, not a set, or the element not allowed.
    """
    spec = field_spec(entity, name)
    if not spec.is_set:
        raise FieldError(name, "not_a_set", "is not a set field")
    return str(spec.validate(name, element))


def _names(test: Callable[[FieldSpec], bool]) -> Mapping[Entity, frozenset[str]]:
    return {
        e: frozenset(n for n, s in specs.items() if test(s)) for e, specs in ENTITY_FIELDS.items()
    }


# Computed once: the merge asks for identity fields on every write it classifies.
_IDENTITY: Final = _names(lambda s: s.identity)
_PII: Final = _names(lambda s: s.pii)
_SETS: Final = _names(lambda s: s.is_set)


def identity_fields(entity: Entity) -> frozenset[str]:
    """Fields whose concurrent clash opens a conflict record."""
    return _IDENTITY[entity]


def pii_fields(entity: Entity) -> frozenset[str]:
    """Fields holding personal data."""
    return _PII[entity]


def set_fields(entity: Entity) -> frozenset[str]:
    """Fields merged per element."""
    return _SETS[entity]
