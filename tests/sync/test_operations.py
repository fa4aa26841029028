"""Reading one raw operation: upcasting, parsing, normalising, and rejections free of PII."""

from __future__ import annotations

import uuid

import pytest
from campsync_sync import (
    HLC,
    SCHEMA_VERSION,
    DeleteOp,
    FieldWrite,
    PatchOp,
    ReferralOp,
    Rejected,
    RejectReason,
    RestoreOp,
    ServiceOp,
    SetChange,
    VoidOp,
    normalize_operation,
    parse_operation,
    read_operation,
)

STAMP = str(HLC(1_790_000_000_000, 0, 7))
CANARY = "Zarghona Canary-Stanekzai"  # must never appear in a rejection


def raw_patch(fields=None, sets=None) -> dict:
    return {
        "op": "patch",
        "op_id": str(uuid.uuid4()),
        "entity": "person",
        "id": str(uuid.uuid4()),
        "fields": fields or {},
        "sets": sets or {},
    }


def rejection(raw, **kw) -> Rejected:
    with pytest.raises(Rejected) as caught:
        read_operation(raw, **kw)
    assert CANARY not in str(caught.value)
    assert CANARY not in caught.value.detail
    assert len(caught.value.detail) <= 200
    return caught.value


def test_every_operation_kind_reads_back() -> None:
    ops = [
        PatchOp(
            op_id=uuid.uuid4(),
            entity="household",
            id=uuid.uuid4(),
            fields={"arrival_type": FieldWrite(value="deported", hlc=STAMP)},
        ),
        DeleteOp(
            op_id=uuid.uuid4(), entity="person", id=uuid.uuid4(), hlc=STAMP, reason="duplicate"
        ),
        RestoreOp(op_id=uuid.uuid4(), entity="person", id=uuid.uuid4(), hlc=STAMP),
        ServiceOp(
            op_id=uuid.uuid4(),
            id=uuid.uuid4(),
            hlc=STAMP,
            household_id=uuid.uuid4(),
            service="tent",
            delivered_at="2026-11-26T10:00:00Z",
        ),
        ReferralOp(
            op_id=uuid.uuid4(),
            id=uuid.uuid4(),
            hlc=STAMP,
            household_id=uuid.uuid4(),
            category="protection",
            urgency="emergency",
        ),
        VoidOp(
            op_id=uuid.uuid4(),
            entity="referral",
            id=uuid.uuid4(),
            hlc=STAMP,
            reason="recorded_in_error",
        ),
    ]
    for op in ops:
        assert read_operation(op.model_dump(mode="json")) == op
        assert (
            read_operation(op.model_dump(mode="json", exclude_defaults=True) | {"op": op.op}) == op
        )


def test_values_are_normalised_and_normal_operations_are_not_copied() -> None:
    raw = raw_patch(
        {
            "given_name": {"value": "  Ahmad   Shah ", "hlc": STAMP},
            "phone": {"value": "+93 70-123-4567", "hlc": STAMP},
        },
        {"vulnerabilities": [{"element": "disability", "present": True, "hlc": STAMP}]},
    )
    op = read_operation(raw)
    assert isinstance(op, PatchOp)
    assert op.fields["given_name"].value == "Ahmad Shah"
    assert op.fields["phone"].value == "+93701234567"
    assert normalize_operation(op) is op, "normalising is idempotent and copies nothing"
    unchanged = parse_operation(raw_patch({"sex": {"value": "female", "hlc": STAMP}}))
    assert normalize_operation(unchanged) is unchanged


def test_set_elements_are_checked() -> None:
    op = parse_operation(
        raw_patch(sets={"needs": [{"element": "food", "present": True, "hlc": STAMP}]})
        | {"entity": "household"}
    )
    assert normalize_operation(op) is op
    assert rejection(
        raw_patch(
            sets={"vulnerabilities": [{"element": CANARY[:60], "present": True, "hlc": STAMP}]}
        )
    ).detail == ("vulnerabilities: invalid_choice")


@pytest.mark.parametrize(
    ("fields", "sets", "reason", "detail"),
    [
        (
            {CANARY: {"value": 1, "hlc": STAMP}},
            None,
            RejectReason.UNKNOWN_FIELD,
            "?: unknown_field",
        ),
        (
            {"given_name": {"value": 5, "hlc": STAMP}},
            None,
            RejectReason.INVALID_VALUE,
            "given_name: invalid_type",
        ),
        (
            {"status": {"value": None, "hlc": STAMP}},
            None,
            RejectReason.INVALID_VALUE,
            "status: required",
        ),
        (
            {"vulnerabilities": {"value": "disability", "hlc": STAMP}},
            None,
            RejectReason.INVALID_VALUE,
            "vulnerabilities: set_field",
        ),
        (
            None,
            {"given_name": [{"element": CANARY[:60], "present": True, "hlc": STAMP}]},
            RejectReason.INVALID_VALUE,
            "given_name: not_a_set",
        ),
        (
            None,
            {CANARY: [{"element": "x", "present": True, "hlc": STAMP}]},
            RejectReason.UNKNOWN_FIELD,
            "?: unknown_field",
        ),
    ],
)
def test_bad_values_are_rejected_naming_only_the_field(fields, sets, reason, detail) -> None:
    rejected = rejection(raw_patch(fields, sets))
    assert (rejected.reason, rejected.detail) == (reason, detail)


@pytest.mark.parametrize(
    ("op", "detail"),
    [
        (
            DeleteOp(
                op_id=uuid.uuid4(), entity="person", id=uuid.uuid4(), hlc=STAMP, reason=CANARY
            ),
            "reason: invalid_choice",
        ),
        (
            ServiceOp(
                op_id=uuid.uuid4(),
                id=uuid.uuid4(),
                hlc=STAMP,
                household_id=uuid.uuid4(),
                service="gold",
                delivered_at="2026-11-26T10:00:00Z",
            ),
            "service: invalid_choice",
        ),
        (
            ReferralOp(
                op_id=uuid.uuid4(),
                id=uuid.uuid4(),
                hlc=STAMP,
                household_id=uuid.uuid4(),
                category="x",
                urgency="high",
            ),
            "category: invalid_choice",
        ),
        (
            ReferralOp(
                op_id=uuid.uuid4(),
                id=uuid.uuid4(),
                hlc=STAMP,
                household_id=uuid.uuid4(),
                category="health",
                urgency="x",
            ),
            "urgency: invalid_choice",
        ),
        (
            ReferralOp(
                op_id=uuid.uuid4(),
                id=uuid.uuid4(),
                hlc=STAMP,
                household_id=uuid.uuid4(),
                category="health",
                urgency="low",
                status="x",
            ),
            "status: invalid_choice",
        ),
        (
            VoidOp(op_id=uuid.uuid4(), entity="referral", id=uuid.uuid4(), hlc=STAMP, reason="x"),
            "reason: invalid_choice",
        ),
    ],
)
def test_catalogue_choices_of_other_operations_are_checked(op, detail) -> None:
    rejected = rejection(op.model_dump(mode="json"))
    assert (rejected.reason, rejected.detail) == (RejectReason.INVALID_VALUE, detail)


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (
            raw_patch({"given_name": {"value": CANARY, "hlc": "not-a-clock"}}),
            "patch.fields.given_name.hlc: string_pattern_mismatch",
        ),
        (
            raw_patch({CANARY: {"value": CANARY, "hlc": "x"}}),
            "patch.fields.?.hlc: string_pattern_mismatch",
        ),
        (raw_patch() | {"extra": CANARY}, "patch.?: extra_forbidden"),
        ({"op": CANARY}, "operation: union_tag_invalid"),
        ([CANARY], "operation: model_attributes_type"),
        ({"op": "service", "op_id": str(uuid.uuid4())}, "service.id: missing"),
    ],
)
def test_malformed_operations_are_rejected_with_a_location_and_never_a_value(raw, detail) -> None:
    rejected = rejection(raw)
    assert (rejected.reason, rejected.detail) == (RejectReason.INVALID_OPERATION, detail)


def test_unknown_schema_versions_are_refused_and_known_ones_read() -> None:
    raw = raw_patch({"sex": {"value": "male", "hlc": STAMP}})
    assert read_operation(raw, schema_version=SCHEMA_VERSION) == parse_operation(raw)
    for version in (0, SCHEMA_VERSION + 1):
        rejected = rejection(raw, schema_version=version)
        assert rejected.reason is RejectReason.UNSUPPORTED_SCHEMA


def test_set_changes_keep_their_order_and_clock_when_normalised() -> None:
    changes = [
        SetChange(element="food", present=True, hlc=STAMP),
        SetChange(element="food", present=False, hlc=STAMP),
    ]
    op = PatchOp(op_id=uuid.uuid4(), entity="household", id=uuid.uuid4(), sets={"needs": changes})
    assert normalize_operation(op).sets["needs"] == changes
