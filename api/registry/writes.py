"""Server-side writes to registry records: a coordinator's resolution, an admin's correction.

A server write is an ordinary patch stamped with a fresh server HLC, merged by the same pure
rules as a tablet's, and logged under a new commit sequence number, so it reaches every tablet
on its next pull.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from campsync_sync import (
    Entity,
    FieldWrite,
    PatchOp,
    RestoreOp,
    apply_registry_op,
    normalize_operation,
    uuid7,
)
from sqlmodel import Session

from api import clock
from api.errors import NotFound
from api.registry import store
from api.types import utcnow


@dataclass(frozen=True)
class ServerWrite:
    seq: int
    hlc: str
    changes: dict[str, Any]


def commit_server_edit(
    *,
    session: Session,
    entity: Entity,
    entity_id: uuid.UUID,
    fields: Mapping[str, Any],
    actor: str,
    kind: str = "resolve",
    restore: bool = False,
) -> ServerWrite:
    """Write ``fields`` to a record with a fresh server clock, in the caller's transaction.

    With ``restore``, the record is first restored (undeleted) with its own fresh clock, which
    wins over the tombstone just as a tablet's explicit restore would. Everything is logged
    under one commit sequence number. Values are validated like a tablet's
    (``campsync_sync.Rejected`` on a bad value). The caller commits.

    Raises:
        NotFound: when the record does not exist.
        campsync_sync.Rejected: when a value is invalid or the record was erased.
    """
    loaded = store.load_registry(session, entity, [entity_id], lock=True)
    record = loaded.get(entity_id)
    if record is None:
        raise NotFound(f"{entity} not found")
    newest = record.state.max_clock()
    if newest is not None:
        clock.receive(newest)
    logged: list[store.Change] = []
    stamp = ""
    all_changes: dict[str, Any] = {}
    if restore:
        stamp = str(clock.now())
        undelete = RestoreOp(op_id=uuid7(), entity=entity.value, id=entity_id, hlc=stamp)
        record.state, _ = apply_registry_op(entity, record.state, undelete)
        all_changes["restored"] = stamp
        logged.append(
            store.Change(
                camp_id=record.camp_id,
                entity=entity,
                entity_id=entity_id,
                kind="restore",
                hlc=stamp,
                op_id=undelete.op_id,
                actor=actor,
                changes={"restored": stamp},
            )
        )
    if fields or not restore:
        stamp = str(clock.now())
        op = PatchOp(
            op_id=uuid7(),
            entity=entity.value,
            id=entity_id,
            fields={
                name: FieldWrite(value=value, hlc=stamp, base=record.state.clocks.get(name))
                for name, value in fields.items()
            },
        )
        normalized = normalize_operation(op)
        assert isinstance(normalized, PatchOp)  # noqa: S101 - normalize keeps the operation's type
        record.state, effect = apply_registry_op(entity, record.state, normalized)
        all_changes.update(effect.changes)
        logged.append(
            store.Change(
                camp_id=record.camp_id,
                entity=entity,
                entity_id=entity_id,
                kind=kind,
                hlc=stamp,
                op_id=op.op_id,
                actor=actor,
                changes=effect.changes,
            )
        )
    now = utcnow()
    store.save_registry(session, entity, [store.registry_row(entity, entity_id, record, now=now)])
    seq = store.allocate_commit_seq(session)
    store.append_changes(session, seq, logged, now=now)
    return ServerWrite(seq=seq, hlc=stamp, changes=all_changes)
