"""Registry test data written the way the server writes it.

Operations are built with ``campsync_sync`` (PatchOp/FieldWrite/DeleteOp, a tablet's Clock),
merged with the pure rules, stored with ``api.registry.store`` under a commit sequence number,
and the merge's conflicts and flags are stored as rows. Each builder commits its own
transaction, like one synced batch.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from campsync_sync import (
    Clock,
    DeleteOp,
    Entity,
    FieldWrite,
    OpEffect,
    PatchOp,
    ServiceOp,
    SetChange,
    apply_registry_op,
    double_distribution,
    node_id_for,
    normalize_operation,
    uuid7,
)
from campsync_sync.merge import EventState
from sqlalchemy import Engine, insert, select
from sqlmodel import Session

from api.db import write_session
from api.devices.models import Device
from api.registry import store
from api.registry.models import ChangeLog, Conflict, Flag, Referral, ServiceDelivery

_numbers = itertools.count(1)


@dataclass
class Tablet:
    """A field tablet: its device id, its operator and its hybrid logical clock."""

    device_id: uuid.UUID = field(default_factory=uuid7)
    operator: str = "farida"
    clock: Clock = field(init=False)

    def __post_init__(self) -> None:
        self.clock = Clock(node=node_id_for(self.device_id))

    def stamp(self) -> str:
        return str(self.clock.now())


def make_device(engine: Engine, camp: str, tablet: Tablet | None = None, **values: Any) -> Tablet:
    """Enrol a tablet directly in the device table (the sync API is not needed here)."""
    tablet = tablet or Tablet()
    with write_session(engine) as session:
        session.add(
            Device(
                id=tablet.device_id,
                camp_id=camp,
                name=values.pop("name", f"tablet-{next(_numbers)}"),
                signing_key=b"\x00" * 32,
                exchange_key=b"\x00" * 32,
                key_id=f"{next(_numbers):016x}",
                node=f"{node_id_for(tablet.device_id):016x}",
                **values,
            )
        )
    return tablet


def _writer(session: Session, entity_id: uuid.UUID, hlc: str | None) -> uuid.UUID | None:
    if hlc is None:
        return None
    return session.execute(
        select(ChangeLog.device_id).where(ChangeLog.entity_id == entity_id, ChangeLog.hlc == hlc)
    ).scalar_one_or_none()


def _max_hlc(op: PatchOp | DeleteOp) -> str:
    if isinstance(op, DeleteOp):
        return op.hlc
    stamps = [w.hlc for w in op.fields.values()]
    stamps += [c.hlc for changes in op.sets.values() for c in changes]
    return max(stamps)


def apply(
    engine: Engine, camp: str, entity: Entity, op: PatchOp | DeleteOp, tablet: Tablet
) -> OpEffect:
    """Merge one operation into the store, as the server's merge does, and commit it."""
    normalized = normalize_operation(op)
    assert isinstance(normalized, PatchOp | DeleteOp)
    with write_session(engine) as session:
        existing = store.load_registry(session, entity, [op.id], lock=True).get(op.id)
        state, effect = apply_registry_op(entity, existing.state if existing else None, normalized)
        record = existing or store.StoredRecord(camp, state, created_by_device=tablet.device_id)
        record.state = state
        now = dt.datetime.now(dt.UTC)
        store.save_registry(session, entity, [store.registry_row(entity, op.id, record, now=now)])
        for conflict in effect.conflicts:
            session.execute(
                insert(Conflict),
                {
                    "id": conflict.id,
                    "camp_id": record.camp_id,
                    "kind": conflict.kind,
                    "entity": entity.value,
                    "entity_id": op.id,
                    "field": conflict.field,
                    "fields": list(conflict.fields),
                    "current_value": conflict.current_value,
                    "current_hlc": conflict.current_hlc,
                    "current_device_id": _writer(session, op.id, conflict.current_hlc),
                    "incoming_value": conflict.incoming_value,
                    "incoming_hlc": conflict.incoming_hlc,
                    "incoming_device_id": tablet.device_id,
                    "incoming_operator": tablet.operator,
                    "op_id": conflict.op_id,
                    "winner": conflict.winner,
                    "status": "open",
                    "created_at": now,
                },
            )
        seq = store.allocate_commit_seq(session)
        store.append_changes(
            session,
            seq,
            [
                store.Change(
                    camp_id=record.camp_id,
                    entity=entity,
                    entity_id=op.id,
                    kind=effect.kind,
                    hlc=_max_hlc(normalized),
                    op_id=op.op_id,
                    device_id=tablet.device_id,
                    actor=tablet.operator,
                    changes=effect.changes,
                )
            ],
            now=now,
        )
    return effect


def patch(
    entity: Entity,
    record_id: uuid.UUID,
    tablet: Tablet,
    fields: Mapping[str, Any],
    *,
    sets: Mapping[str, Iterable[str]] | None = None,
    base: Mapping[str, str] | None = None,
) -> PatchOp:
    stamp = tablet.stamp()
    return PatchOp(
        op_id=uuid7(),
        entity=entity.value,  # type: ignore[arg-type]
        id=record_id,
        fields={
            k: FieldWrite(value=v, hlc=stamp, base=(base or {}).get(k)) for k, v in fields.items()
        },
        sets={
            name: [SetChange(element=e, present=True, hlc=stamp) for e in elements]
            for name, elements in (sets or {}).items()
        },
    )


def make_household(
    engine: Engine,
    camp: str,
    tablet: Tablet | None = None,
    *,
    needs: Iterable[str] = (),
    vulnerabilities: Iterable[str] = (),
    **fields: Any,
) -> uuid.UUID:
    tablet = tablet or Tablet()
    household_id = uuid7()
    sets = {"needs": list(needs), "vulnerabilities": list(vulnerabilities)}
    fields = {"arrival_date": "2026-11-20", "arrival_type": "deported", **fields}
    apply(
        engine,
        camp,
        Entity.HOUSEHOLD,
        patch(
            Entity.HOUSEHOLD,
            household_id,
            tablet,
            fields,
            sets={k: v for k, v in sets.items() if v},
        ),
        tablet,
    )
    return household_id


def make_person(
    engine: Engine,
    camp: str,
    household_id: uuid.UUID,
    tablet: Tablet | None = None,
    *,
    vulnerabilities: Iterable[str] = (),
    **fields: Any,
) -> uuid.UUID:
    tablet = tablet or Tablet()
    person_id = uuid7()
    values = {"household_id": str(household_id), "sex": "female", **fields}
    sets = {"vulnerabilities": list(vulnerabilities)} if vulnerabilities else None
    apply(
        engine,
        camp,
        Entity.PERSON,
        patch(Entity.PERSON, person_id, tablet, values, sets=sets),
        tablet,
    )
    return person_id


def current_clocks(engine: Engine, entity: Entity, record_id: uuid.UUID) -> dict[str, str]:
    with Session(engine) as session:
        return store.load_registry(session, entity, [record_id])[record_id].state.seen()


def edit(
    engine: Engine,
    camp: str,
    entity: Entity,
    record_id: uuid.UUID,
    tablet: Tablet,
    *,
    seen: bool = False,
    **fields: Any,
) -> OpEffect:
    """An edit; ``seen`` makes it a fast-forward of what the server holds, else it is concurrent."""
    base = current_clocks(engine, entity, record_id) if seen else None
    return apply(engine, camp, entity, patch(entity, record_id, tablet, fields, base=base), tablet)


def delete(
    engine: Engine,
    camp: str,
    entity: Entity,
    record_id: uuid.UUID,
    tablet: Tablet,
    *,
    seen: bool = False,
) -> OpEffect:
    base = current_clocks(engine, entity, record_id) if seen else {}
    op = DeleteOp(
        op_id=uuid7(),
        entity=entity.value,  # type: ignore[arg-type]
        id=record_id,
        hlc=tablet.stamp(),
        reason="duplicate",
        base=base,
    )
    return apply(engine, camp, entity, op, tablet)


def make_conflict(
    engine: Engine,
    camp: str,
    household_id: uuid.UUID,
    *,
    field: str = "given_name",
    current: str = "Mohammad",
    incoming: str = "Muhammad",
) -> tuple[uuid.UUID, uuid.UUID]:
    """A person whose ``field`` two tablets wrote concurrently; returns (person, conflict)."""
    first, second = Tablet(operator="farida"), Tablet(operator="karim")
    values = {field: current} if field != "household_id" else {}
    person_id = make_person(engine, camp, household_id, first, **values)
    # Written later, as the incoming side is: without this, two stamps of the same
    # millisecond would be ordered by the tablets' random node ids.
    second.clock.receive(first.clock.now())
    effect = edit(engine, camp, Entity.PERSON, person_id, second, **{field: incoming})
    assert len(effect.conflicts) == 1, effect
    return person_id, effect.conflicts[0].id


def make_service(
    engine: Engine,
    camp: str,
    household_id: uuid.UUID,
    tablet: Tablet | None = None,
    *,
    service: str = "food_ration",
    delivered_at: dt.datetime | None = None,
    quantity: float = 1,
    person_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """Insert a delivery and flag it when the household already had it inside its window."""
    tablet = tablet or Tablet()
    op = ServiceOp(
        op_id=uuid7(),
        id=uuid7(),
        hlc=tablet.stamp(),
        household_id=household_id,
        person_id=person_id,
        service=service,
        quantity=quantity,
        delivered_at=delivered_at or dt.datetime.now(dt.UTC),
    )
    with write_session(engine) as session:
        prior = [
            EventState(
                Entity.SERVICE_DELIVERY,
                row.id,
                {
                    "service": row.service,
                    "household_id": str(row.household_id),
                    "delivered_at": row.delivered_at.isoformat(),
                },
                row.hlc,
                row.voided_hlc,
            )
            for row in session.execute(
                select(ServiceDelivery).where(
                    ServiceDelivery.household_id == household_id,
                    ServiceDelivery.service == service,
                )
            ).scalars()
        ]
        now = dt.datetime.now(dt.UTC)
        session.execute(
            insert(ServiceDelivery),
            {
                "id": op.id,
                "camp_id": camp,
                "household_id": household_id,
                "person_id": person_id,
                "service": service,
                "quantity": quantity,
                "unit": "kit",
                "delivered_at": op.delivered_at,
                "hlc": op.hlc,
                "device_id": tablet.device_id,
                "operator": tablet.operator,
                "created_at": now,
            },
        )
        flag = double_distribution(op, prior)
        if flag is not None:
            session.execute(
                insert(Flag),
                {
                    "id": flag.id,
                    "camp_id": camp,
                    "kind": flag.kind,
                    "entity": flag.entity.value,
                    "entity_id": flag.entity_id,
                    "household_id": household_id,
                    "device_id": tablet.device_id,
                    "details": {"related_ids": [str(i) for i in flag.related_ids]},
                    "status": "open",
                    "created_at": now,
                },
            )
        seq = store.allocate_commit_seq(session)
        store.append_changes(
            session,
            seq,
            [
                store.Change(
                    camp_id=camp,
                    entity=Entity.SERVICE_DELIVERY,
                    entity_id=op.id,
                    kind="event",
                    hlc=op.hlc,
                    op_id=op.op_id,
                    device_id=tablet.device_id,
                    actor=tablet.operator,
                )
            ],
            now=now,
        )
    return op.id


def make_referral(
    engine: Engine,
    camp: str,
    household_id: uuid.UUID,
    tablet: Tablet | None = None,
    *,
    category: str = "health",
    urgency: str = "high",
    person_id: uuid.UUID | None = None,
    created_at: dt.datetime | None = None,
) -> uuid.UUID:
    tablet = tablet or Tablet()
    referral_id = uuid7()
    with write_session(engine) as session:
        session.execute(
            insert(Referral),
            {
                "id": referral_id,
                "camp_id": camp,
                "household_id": household_id,
                "person_id": person_id,
                "category": category,
                "urgency": urgency,
                "status": "open",
                "hlc": tablet.stamp(),
                "device_id": tablet.device_id,
                "operator": tablet.operator,
                "created_at": created_at or dt.datetime.now(dt.UTC),
            },
        )
    return referral_id


def flags_of(engine: Engine, household_id: uuid.UUID) -> list[uuid.UUID]:
    with Session(engine) as session:
        return list(
            session.execute(select(Flag.id).where(Flag.household_id == household_id)).scalars()
        )
