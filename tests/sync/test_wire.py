"""Wire schemas: frozen, unknown fields refused, versions carried, the error catalogue."""

from __future__ import annotations

import datetime as dt
import inspect
import re
import uuid
from pathlib import Path

import pytest
from campsync_sync import (
    ERROR_STATUS,
    HLC,
    PROTOCOL_VERSION,
    SCHEMA_VERSION,
    Batch,
    BatchStatus,
    ErrorBody,
    ErrorCode,
    FieldWrite,
    OpResult,
    Outcome,
    PatchOp,
    ProtocolError,
    PullPage,
    Receipt,
    RejectReason,
    ServiceOp,
    parse_operation,
    wire,
)
from campsync_sync import errors as errors_module
from pydantic import BaseModel, ValidationError

STAMP = str(HLC(1_790_000_000_000, 0, 7))
NOW = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
MODELS = [
    obj
    for obj in vars(wire).values()
    if inspect.isclass(obj) and issubclass(obj, BaseModel) and obj.__module__ == wire.__name__
]


def test_every_wire_model_is_frozen_and_refuses_unknown_fields() -> None:
    assert len(MODELS) >= 25
    for model in [*MODELS, ErrorBody, errors_module.ErrorDetail]:
        assert model.model_config.get("frozen") is True, model
        assert model.model_config.get("extra") == "forbid", model


def test_messages_carry_their_versions() -> None:
    versioned = {
        wire.Batch: {"protocol", "schema_version"},
        wire.Receipt: {"protocol", "schema_version"},
        wire.PullPage: {"protocol", "schema_version"},
        wire.EnrollmentRequest: {"protocol", "schema_version"},
        wire.EnrollmentResponse: {"protocol", "schema_version"},
        wire.EnrollmentInvite: {"protocol"},
        wire.KeyManifest: {"protocol"},
    }
    for model, fields in versioned.items():
        assert fields <= set(model.model_fields), model
        for name in fields:
            assert model.model_fields[name].default == (
                PROTOCOL_VERSION if name == "protocol" else SCHEMA_VERSION
            )
    with pytest.raises(ValidationError):
        PullPage(protocol=0, camp_id="c", cursor=0, next_cursor=0, has_more=False, server_hlc=STAMP)


def test_frozen_and_extra_in_practice() -> None:
    write = FieldWrite(value="x", hlc=STAMP)
    with pytest.raises(ValidationError):
        write.hlc = STAMP  # type: ignore[misc]
    with pytest.raises(ValidationError):
        FieldWrite(value="x", hlc=STAMP, note="x")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        FieldWrite(value="x", hlc=STAMP.upper())


def test_a_batch_built_from_operations_is_compact_and_reads_back() -> None:
    ops = [
        PatchOp(
            op_id=uuid.uuid4(),
            entity="person",
            id=uuid.uuid4(),
            fields={"sex": FieldWrite(value=None, hlc=STAMP)},
        ),
        ServiceOp(
            op_id=uuid.uuid4(),
            id=uuid.uuid4(),
            hlc=STAMP,
            household_id=uuid.uuid4(),
            service="tent",
            delivered_at=NOW,
        ),
    ]
    batch = Batch.of(
        batch_id=uuid.uuid4(),
        device_id=uuid.uuid4(),
        seq=3,
        hlc=STAMP,
        ops=ops,
        operator="op-7",
        backlog=12,
    )
    assert batch.ops[0] == {
        "op": "patch",
        "op_id": str(ops[0].op_id),
        "entity": "person",
        "id": str(ops[0].id),
        "fields": {"sex": {"value": None, "hlc": STAMP}},
    }
    assert "quantity" not in batch.ops[1]
    assert batch.ops[1]["op"] == "service"
    assert [parse_operation(raw) for raw in batch.ops] == ops
    assert Batch.model_validate_json(batch.model_dump_json()) == batch
    assert (batch.backlog, batch.protocol, batch.schema_version) == (
        12,
        PROTOCOL_VERSION,
        SCHEMA_VERSION,
    )
    with pytest.raises(ValidationError):
        Batch(batch_id=uuid.uuid4(), device_id=uuid.uuid4(), seq=0, hlc=STAMP, ops=[])


def test_an_op_result_has_a_reason_exactly_when_rejected() -> None:
    OpResult(
        index=0,
        outcome=Outcome.REJECTED,
        reason=RejectReason.INVALID_VALUE,
        detail="phone: invalid_format",
    )
    OpResult(index=1, outcome=Outcome.CONFLICT, conflict_ids=[uuid.uuid4()])
    with pytest.raises(ValidationError, match="reason"):
        OpResult(index=0, outcome=Outcome.REJECTED)
    with pytest.raises(ValidationError, match="reason"):
        OpResult(index=0, outcome=Outcome.APPLIED, reason=RejectReason.ERASED)


def test_receipts_round_trip() -> None:
    receipt = Receipt(
        batch_id=uuid.uuid4(),
        device_id=uuid.uuid4(),
        seq=4,
        status=BatchStatus.APPLIED,
        next_seq=5,
        commit_seq=918305,
        server_hlc=STAMP,
        received_at=NOW,
        results=[
            OpResult(index=0, op_id=uuid.uuid4(), outcome=Outcome.FLAGGED, flag_ids=[uuid.uuid4()])
        ],
    )
    assert Receipt.model_validate_json(receipt.model_dump_json()) == receipt
    assert [o.value for o in Outcome] == ["applied", "merged", "conflict", "flagged", "rejected"]


# ------------------------------------------------------------------------- errors


def test_every_error_code_has_a_status() -> None:
    assert set(ERROR_STATUS) == set(ErrorCode)
    assert all(400 <= status < 600 for status in ERROR_STATUS.values())
    assert all(code.value == code.name.lower() for code in ErrorCode)


def test_protocol_errors_map_to_their_status() -> None:
    assert ProtocolError("x").code is ErrorCode.BAD_REQUEST
    assert ProtocolError("x").status == 400
    for error in vars(errors_module).values():
        if inspect.isclass(error) and issubclass(error, ProtocolError):
            assert error("x").status == ERROR_STATUS[error.code]


def test_the_error_body() -> None:
    body = ErrorBody.of(ErrorCode.SEQ_GAP, "expected seq 7", {"expected_seq": 7})
    assert body.model_dump(mode="json") == {
        "error": {"code": "seq_gap", "message": "expected seq 7", "details": {"expected_seq": 7}}
    }
    assert ErrorBody.model_validate_json(body.model_dump_json()) == body
    with pytest.raises(ValidationError):
        ErrorBody.model_validate({"error": {"code": "no_such_code", "message": "x"}})


def test_the_error_table_in_the_spec_matches_the_catalogue() -> None:
    spec = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()
    section = re.split(r"^## 14\. Error codes$", spec, flags=re.MULTILINE)[1]
    rows = re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \|", section, flags=re.MULTILINE)
    assert rows, "docs/protocol.md has no error table"
    assert [code for code, _ in rows] == [code.value for code in ErrorCode], (
        "same codes, same order"
    )
    assert {ErrorCode(code): int(status) for code, status in rows} == ERROR_STATUS
