"""Before the transaction: validate, normalise and clamp every operation of a batch.

Pure CPU work with no database access, so it runs before the write transaction opens and
never holds a lock. An invalid operation becomes a :class:`Prepared` carrying its rejection.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from campsync_sync import (
    HARD_MAX_OPERATIONS,
    HLC,
    SUPPORTED_SCHEMA_VERSIONS,
    Batch,
    FieldWrite,
    Operation,
    PatchOp,
    Rejected,
    RejectReason,
    ServiceOp,
    SetChange,
    clamp,
    latest_clock,
    normalize_operation,
    parse_operation,
)
from pydantic import Field, ValidationError


@dataclass(slots=True)
class Prepared:
    """One operation after validation, before the transaction."""

    index: int
    raw: dict[str, Any] | Operation
    """The operation as sent: raw JSON, or already parsed when the whole batch was valid."""
    op: Operation | None = None
    op_id: uuid.UUID | None = None
    rejected: Rejected | None = None
    clamped: bool = False
    hlc: str = ""
    """The operation's latest clock, once bounded (``campsync_sync.latest_clock``)."""


def _op_id_of(raw: dict[str, Any]) -> uuid.UUID | None:
    if "op_id" not in raw:
        return None
    try:
        return uuid.UUID(str(raw.get("op_id")))
    except ValueError:
        return None


class Clamper:
    """Bounds clocks that claim to be too far ahead of the server's.

    Each clamp takes a fresh server timestamp as its limit, so one device's successive
    clamped writes keep their order.
    """

    def __init__(self, *, now: Callable[[], HLC], skew_ms: int) -> None:
        self.now = now
        self.skew_ms = skew_ms
        # HLC texts sort like the clocks: a string comparison tells what needs a clamp.
        self.ceiling = f"{now().millis + skew_ms:012x}" + "f" * 20

    def __call__(self, text: str) -> tuple[str, bool]:
        if text <= self.ceiling:
            return text, False
        server = self.now()
        limit = HLC(server.millis + self.skew_ms, server.counter, server.node)
        stamp, clamped = clamp(HLC.decode(text), limit=limit)
        return str(stamp), clamped


def _clamp_op(op: Operation, clamper: Clamper) -> tuple[Operation, bool, str]:
    """The operation with every clock bounded, whether any was clamped, its latest clock."""
    latest = latest_clock(op)
    if latest <= clamper.ceiling:
        return op, False, latest
    hit = False

    def bound(text: str) -> str:
        nonlocal hit
        stamp, clamped = clamper(text)
        hit = hit or clamped
        return stamp

    if isinstance(op, PatchOp):
        fields: dict[str, FieldWrite] = {}
        for name, write in op.fields.items():
            stamp = bound(write.hlc)
            fields[name] = write if stamp == write.hlc else write.model_copy(update={"hlc": stamp})
        sets: dict[str, list[SetChange]] = {}
        for name, changes in op.sets.items():
            sets[name] = []
            for change in changes:
                stamp = bound(change.hlc)
                sets[name].append(
                    change if stamp == change.hlc else change.model_copy(update={"hlc": stamp})
                )
        if not hit:
            return op, False, latest
        bounded = op.model_copy(update={"fields": fields, "sets": sets})
        return bounded, True, latest_clock(bounded)
    stamp = bound(op.hlc)
    return (op.model_copy(update={"hlc": stamp}) if hit else op), hit, stamp


class TypedBatch(Batch):
    """A batch whose operations are all valid: validated in one pass, straight from JSON.

    The protocol's ``Batch`` keeps operations raw so that one bad operation never blocks
    the others; the common case, a batch with no bad operation, is validated here in one
    call, and only a batch that fails falls back to validating operation by operation.
    """

    ops: list[Operation] = Field(max_length=HARD_MAX_OPERATIONS)  # type: ignore[assignment]


def parse_typed(plaintext: bytes) -> TypedBatch | None:
    try:
        return TypedBatch.model_validate_json(plaintext)
    except ValidationError:
        return None


def prepare(batch: Batch, clamper: Clamper) -> list[Prepared]:
    """Validate and normalise every operation; clamp clocks from the future.

    Pure CPU work, done before the transaction opens.
    """
    typed = batch if isinstance(batch, TypedBatch) else None
    prepared: list[Prepared] = []
    seen: set[uuid.UUID] = set()
    schema_ok = batch.schema_version in SUPPORTED_SCHEMA_VERSIONS
    for index, raw in enumerate(batch.ops):
        item = Prepared(index, raw, op_id=_op_id_of(raw) if isinstance(raw, dict) else None)
        prepared.append(item)
        if not schema_ok:
            item.rejected = Rejected(
                RejectReason.UNSUPPORTED_SCHEMA, f"schema {batch.schema_version}"
            )
            continue
        try:
            parsed = typed.ops[index] if typed is not None else parse_operation(raw)
            op = normalize_operation(parsed)
        except ValidationError as exc:
            where = ".".join(str(p) for p in exc.errors()[0]["loc"])[:100]
            item.rejected = Rejected(RejectReason.INVALID_OPERATION, where or "operation")
            continue
        except Rejected as exc:
            item.op_id = parsed.op_id
            item.rejected = exc
            continue
        item.op_id = op.op_id
        known = len(seen)
        seen.add(op.op_id)  # one hash of the UUID (in Python) where "in" then "add" take two
        if len(seen) == known:
            item.rejected = Rejected(RejectReason.DUPLICATE_OP, "op_id repeated in the batch")
            continue
        if isinstance(op, ServiceOp) and op.delivered_at.utcoffset():
            # Stored in UTC; normalising here makes a replayed event compare equal.
            op = op.model_copy(update={"delivered_at": op.delivered_at.astimezone(dt.UTC)})
        item.op, item.clamped, item.hlc = _clamp_op(op, clamper)
    return prepared
