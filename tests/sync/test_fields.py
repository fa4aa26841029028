"""The domain catalogue: every field kind's validation and normal form."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from campsync_sync import (
    ENTITY_FIELDS,
    EVENT_ENTITIES,
    REGISTRY_ENTITIES,
    Entity,
    FieldError,
    field_spec,
    identity_fields,
    pii_fields,
    set_fields,
    validate_element,
    validate_field,
)
from campsync_sync.fields import DEFAULT_ENTITLEMENT_DAYS, SERVICES
from hypothesis import given
from hypothesis import strategies as st

H, P = Entity.HOUSEHOLD, Entity.PERSON

# A valid value for every scalar field, and its normal form.
SAMPLES = {
    (H, "head_person_id"): (
        "01890A5D-AC96-774B-BCCE-B302099A8057",
        "01890a5d-ac96-774b-bcce-b302099a8057",
    ),
    (H, "arrival_date"): ("2026-11-26", "2026-11-26"),
    (H, "arrival_type"): ("deported", "deported"),
    (H, "crossing_point"): ("Torkham", "Torkham"),
    (H, "origin_country"): ("Pakistan", "Pakistan"),
    (H, "origin_location"): ("Peshawar,  Board", "Peshawar, Board"),
    (H, "destination_province"): ("Nangarhar", "Nangarhar"),
    (H, "destination_district"): ("Behsud", "Behsud"),
    (H, "shelter_status"): ("tent_assigned", "tent_assigned"),
    (H, "shelter_location"): ("Block C", "Block C"),
    (H, "phone"): ("+93 70 123 4567", "+93701234567"),
    (H, "status"): ("departed", "departed"),
    (P, "household_id"): (
        "{01890a5d-ac96-774b-bcce-b302099a8057}",
        "01890a5d-ac96-774b-bcce-b302099a8057",
    ),
    (P, "relationship_to_head"): ("grandchild", "grandchild"),
    (P, "given_name"): ("Ahmad", "Ahmad"),
    (P, "family_name"): ("Stanekzai", "Stanekzai"),
    (P, "father_name"): ("Abdul  Rahim", "Abdul Rahim"),
    # ZWNJ is part of Persian text; the letters only look Latin to a linter.
    (P, "given_name_local"): ("عبد\u200cالله", "عبد\u200cالله"),  # noqa: RUF001
    (P, "family_name_local"): ("ستانکزی", "ستانکزی"),
    (P, "father_name_local"): ("محمد", "محمد"),
    (P, "sex"): ("female", "female"),
    (P, "date_of_birth"): ("19900101", "1990-01-01"),
    (P, "birth_year"): (1990, 1990),
    (P, "dob_estimated"): (True, True),
    (P, "document_type"): ("tazkira", "tazkira"),
    (P, "document_number"): ("1400 0101 ۱۲۳۴۵", "1400010112345"),
    (P, "phone"): ("۰۷۰۱۲۳۴۵۶۷", "0701234567"),
    (P, "status"): ("deceased", "deceased"),
}


def reason(entity: Entity, name: str, value) -> str:
    with pytest.raises(FieldError) as caught:
        validate_field(entity, name, value)
    assert caught.value.field == name
    assert str(caught.value).startswith(f"{name}: ")
    return caught.value.reason


def test_every_scalar_field_has_a_sample() -> None:
    scalar = {
        (e, n) for e in REGISTRY_ENTITIES for n, spec in ENTITY_FIELDS[e].items() if not spec.is_set
    }
    assert scalar == set(SAMPLES)


@pytest.mark.parametrize(("key", "sample"), SAMPLES.items(), ids=lambda v: str(v))
def test_every_field_normalises_its_sample_idempotently(key, sample) -> None:
    entity, name = key
    given, normal = sample
    assert validate_field(entity, name, given) == normal
    assert validate_field(entity, name, normal) == normal


def test_entities() -> None:
    assert REGISTRY_ENTITIES | EVENT_ENTITIES == set(Entity)
    assert not REGISTRY_ENTITIES & EVENT_ENTITIES
    assert set(DEFAULT_ENTITLEMENT_DAYS) <= set(SERVICES)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (7, "invalid_type"),
        ("   ", "empty"),
        ("x" * 101, "too_long"),
        ("Ah\x00mad", "invalid_value"),
        ("Ah\x07mad", "invalid_value"),
        ("Ahmad\u202edaM", "invalid_value"),  # right-to-left override
        ("Ahmad\u2066", "invalid_value"),
        ("Ahmad\ud800", "invalid_value"),  # lone surrogate: would not even encode to UTF-8
    ],
)
def test_text_fields_refuse(value, why) -> None:
    assert reason(P, "given_name", value) == why


def test_text_is_collapsed_and_composed() -> None:
    assert validate_field(P, "given_name", "  Mohammad\t\nAli ") == "Mohammad Ali"
    assert validate_field(P, "given_name", "Ama\u0301") == "Amá"  # NFC
    assert validate_field(H, "crossing_point", "x" * 80) == "x" * 80
    assert reason(H, "crossing_point", "x" * 81) == "too_long"


@pytest.mark.parametrize("value", ["expelled", "", None, ["deported"], 1])
def test_choices_refuse_anything_else(value) -> None:
    if value is None:
        assert validate_field(H, "arrival_type", value) is None
    else:
        assert reason(H, "arrival_type", value) == "invalid_choice"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (700123456, "invalid_type"),
        ("12345", "invalid_format"),
        ("+93 70 abc", "invalid_format"),
        ("1" * 21, "invalid_format"),
    ],
)
def test_phones(value, why) -> None:
    assert reason(P, "phone", value) == why


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (123, "invalid_type"),
        ("", "invalid_format"),
        ("AB_12", "invalid_format"),
        ("x" * 41, "invalid_format"),
    ],
)
def test_document_numbers(value, why) -> None:
    assert reason(P, "document_number", value) == why
    assert validate_field(P, "document_number", "p-123/4") == "P-123/4"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (20260101, "invalid_type"),
        ("26/11/2026", "invalid_format"),
        ("1899-12-31", "out_of_range"),
        ("2101-01-01", "out_of_range"),
    ],
)
def test_dates(value, why) -> None:
    assert reason(H, "arrival_date", value) == why


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (True, "invalid_type"),
        (1990.0, "invalid_type"),
        ("1990", "invalid_type"),
        (1899, "out_of_range"),
        (2101, "out_of_range"),
    ],
)
def test_birth_years(value, why) -> None:
    assert reason(P, "birth_year", value) == why


def test_booleans_and_uuids() -> None:
    assert reason(P, "dob_estimated", "true") == "invalid_type"
    assert reason(P, "dob_estimated", 1) == "invalid_type"
    assert reason(P, "household_id", 5) == "invalid_type"
    assert reason(P, "household_id", "not-a-uuid") == "invalid_format"


def test_clearing_and_field_kinds() -> None:
    assert validate_field(P, "phone", None) is None
    assert reason(P, "household_id", None) == "required"
    assert reason(P, "status", None) == "required"
    assert reason(P, "vulnerabilities", ["disability"]) == "set_field"
    assert reason(P, "nickname", "x") == "unknown_field"
    assert reason(H, "given_name", "x") == "unknown_field"


def test_set_elements() -> None:
    assert validate_element(H, "needs", "food") == "food"
    assert validate_element(P, "vulnerabilities", "disability") == "disability"
    for name, element, why in [
        ("needs", "gold", "invalid_choice"),
        ("given_name", "x", "not_a_set"),
        ("nope", "x", "unknown_field"),
    ]:
        with pytest.raises(FieldError) as caught:
            validate_element(H if name == "needs" else P, name, element)
        assert caught.value.reason == why


def test_field_groups() -> None:
    assert identity_fields(P) == {
        "household_id", "given_name", "family_name", "father_name", "given_name_local",
        "family_name_local", "father_name_local", "sex", "date_of_birth", "birth_year",
        "document_type", "document_number",
    }  # fmt: skip
    assert identity_fields(H) == frozenset()
    assert pii_fields(H) == {"phone"}
    assert {"given_name", "document_number", "phone", "date_of_birth"} <= pii_fields(P)
    assert "sex" not in pii_fields(P)
    assert "status" not in pii_fields(P)
    assert set_fields(H) == {"needs", "vulnerabilities"}
    assert set_fields(P) == {"vulnerabilities"}
    assert field_spec(H, "needs").is_set
    assert not field_spec(H, "phone").is_set
    assert not field_spec(P, "status").nullable


def test_the_field_table_in_the_spec_matches_the_catalogue() -> None:
    spec = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()
    cell = r"\s*(yes|no|)\s*\|"
    row = rf"^\| (household|person) \| `(\w+)` \| ([^|]+) \|{cell}{cell}{cell}$"
    rows = re.findall(row, spec, flags=re.MULTILINE)
    documented = {
        (Entity(e), n): (kind.strip().startswith("set"), i == "yes", p == "yes", z == "yes")
        for e, n, kind, i, p, z in rows
    }
    actual = {
        (e, n): (s.is_set, s.identity, s.pii, s.nullable)
        for e in REGISTRY_ENTITIES
        for n, s in ENTITY_FIELDS[e].items()
    }
    assert documented == actual


@given(st.uuids())
def test_every_spelling_of_a_uuid_has_one_normal_form(value: uuid.UUID) -> None:
    """The normal form is taken as it is; other spellings are parsed into it."""
    normal = str(value)
    spellings = [normal, normal.upper(), value.hex, f"{{{normal}}}", f"urn:uuid:{normal}"]
    assert {validate_field(P, "household_id", s) for s in spellings} == {normal}
    assert reason(P, "household_id", normal + "\n") == "invalid_format"
    assert reason(P, "household_id", normal[:-1] + "g") == "invalid_format"
