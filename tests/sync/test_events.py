"""Events: insert-only, idempotent by id, voids, and double-distribution flags."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from campsync_sync import (
    HLC,
    Entity,
    EventState,
    Outcome,
    ReferralOp,
    Rejected,
    RejectReason,
    ServiceOp,
    VoidOp,
    apply_event_op,
    apply_void,
    double_distribution,
    event_state_of,
)
from campsync_sync.merge import CONFLICT_NAMESPACE

HOUSEHOLD = uuid.UUID("01890a5d-ac96-774b-bcce-b302099a8057")
OTHER_HOUSEHOLD = uuid.UUID("01890a5d-ac96-774b-bcce-b302099a8058")
DAY = dt.datetime(2026, 11, 26, 9, 30, tzinfo=dt.UTC)


def service(service: str = "food_ration", when: dt.datetime = DAY, **kw) -> ServiceOp:
    fields = {
        "op_id": uuid.uuid4(),
        "id": uuid.uuid4(),
        "hlc": str(HLC(1, 0, 7)),
        "household_id": HOUSEHOLD,
    }
    return ServiceOp(**(fields | {"service": service, "delivered_at": when} | kw))


def referral(**kw) -> ReferralOp:
    fields = {
        "op_id": uuid.uuid4(),
        "id": uuid.uuid4(),
        "hlc": str(HLC(1, 0, 7)),
        "household_id": HOUSEHOLD,
    }
    return ReferralOp(**(fields | {"category": "health", "urgency": "high"} | kw))


def void(
    target: uuid.UUID, millis: int, entity: str = "service_delivery", reason: str = "duplicate"
) -> VoidOp:
    return VoidOp(
        op_id=uuid.uuid4(), entity=entity, id=target, hlc=str(HLC(millis, 0, 7)), reason=reason
    )


def test_an_event_is_inserted_once_and_its_replay_is_a_noop() -> None:
    op = service(quantity=2, unit="kit")
    state, effect = apply_event_op(None, op)
    assert (effect.outcome, effect.kind) == (Outcome.APPLIED, "event")
    assert state == event_state_of(op)
    assert state.entity is Entity.SERVICE_DELIVERY
    assert state.values["quantity"] == 2
    assert effect.changes == dict(state.values)
    resent = op.model_copy(update={"op_id": uuid.uuid4(), "hlc": str(HLC(9, 0, 7))})
    again, effect = apply_event_op(state, resent)
    assert (again, effect.outcome, effect.kind) == (state, Outcome.APPLIED, "noop")


def test_a_replay_is_recognised_after_storage_changed_the_spelling() -> None:
    op = service()
    stored = event_state_of(op)
    # What a database hands back: another offset spelling, an int quantity, extra columns.
    values = dict(stored.values) | {
        "delivered_at": "2026-11-26T09:30:00+00:00",
        "quantity": 1,
        "camp_id": "torkham-1",
    }
    reloaded = EventState(stored.entity, stored.id, values, stored.hlc)
    assert apply_event_op(reloaded, op)[1].kind == "noop"


@pytest.mark.parametrize(
    "stored_values",
    [{"service": "tent"}, {"service": "food_ration", "delivered_at": "garbage"}],
)
def test_an_id_taken_by_another_event_is_rejected(stored_values) -> None:
    op = service()
    stored = EventState(Entity.SERVICE_DELIVERY, op.id, stored_values, op.hlc)
    with pytest.raises(Rejected) as caught:
        apply_event_op(stored, op)
    assert caught.value.reason is RejectReason.ID_REUSED


def test_an_id_taken_by_another_kind_of_event_is_rejected() -> None:
    op = referral()
    existing, _ = apply_event_op(None, service(id=op.id))
    with pytest.raises(Rejected, match="id_reused"):
        apply_event_op(existing, op)
    state, _ = apply_event_op(None, op)
    assert state.entity is Entity.REFERRAL
    assert state.values["status"] == "open"


def test_voids_keep_the_event_and_the_earliest_void_wins_in_any_order() -> None:
    event, _ = apply_event_op(None, service())
    early, late = void(event.id, 5, reason="duplicate"), void(event.id, 9, reason="not_delivered")
    first, effect = apply_void(event, late)
    assert (effect.kind, first.voided, first.void_reason) == ("void", late.hlc, "not_delivered")
    assert effect.changes == {"voided": late.hlc, "void_reason": "not_delivered"}
    both, effect = apply_void(first, early)
    assert (effect.kind, both.voided, both.void_reason) == ("void", early.hlc, "duplicate")
    other_order, effect = apply_void(apply_void(event, early)[0], late)
    assert (other_order, effect.kind, effect.outcome) == (both, "noop", Outcome.APPLIED)
    assert both.values == event.values


def test_a_void_without_its_event_is_rejected() -> None:
    event, _ = apply_event_op(None, service())
    for existing, op in (
        (None, void(event.id, 5)),
        (event, void(event.id, 5, entity="referral")),
        (event, void(uuid.uuid4(), 5)),
    ):
        with pytest.raises(Rejected) as caught:
            apply_void(existing, op)
        assert caught.value.reason is RejectReason.UNKNOWN_TARGET


def test_a_repeated_service_inside_its_window_is_flagged_not_dropped() -> None:
    earlier = [
        event_state_of(service(when=DAY - dt.timedelta(days=3))),
        event_state_of(service(when=DAY - dt.timedelta(days=1))),
    ]
    new = service()
    flag = double_distribution(new, earlier)
    assert flag is not None
    assert flag.kind == "double_distribution"
    assert flag.entity is Entity.SERVICE_DELIVERY
    assert flag.entity_id == new.id
    assert flag.related_ids == tuple(sorted(e.id for e in earlier))
    assert flag.id == uuid.uuid5(CONFLICT_NAMESPACE, f"{new.id}:double_distribution")
    assert double_distribution(new, list(reversed(earlier))) == flag


def test_what_is_not_a_double_distribution() -> None:
    new = service()
    outside = event_state_of(service(when=DAY - dt.timedelta(days=14)))  # the window is 14 days
    other_service = event_state_of(service("tent"))
    other_household = event_state_of(service(household_id=OTHER_HOUSEHOLD))
    voided_event = event_state_of(service())
    voided_event = apply_void(voided_event, void(voided_event.id, 3))[0]
    itself = event_state_of(new)
    assert (
        double_distribution(new, [outside, other_service, other_household, voided_event, itself])
        is None
    )
    # Services with no window (a consultation, a vaccination) are never flagged.
    assert (
        double_distribution(service("vaccination"), [event_state_of(service("vaccination"))])
        is None
    )
    assert double_distribution(new, [event_state_of(service())], windows={"food_ration": 0}) is None


def test_stored_delivery_times_without_offset_are_read_as_utc() -> None:
    new = service(when=DAY)
    naive = event_state_of(service(when=DAY - dt.timedelta(days=13, hours=23)))
    naive = EventState(
        naive.entity,
        naive.id,
        dict(naive.values) | {"delivered_at": "2026-11-12 10:30:00"},
        naive.hlc,
    )
    as_datetime = event_state_of(service())
    as_datetime = EventState(
        as_datetime.entity,
        as_datetime.id,
        dict(as_datetime.values) | {"delivered_at": DAY.replace(tzinfo=None)},
        as_datetime.hlc,
    )
    flag = double_distribution(new, [naive, as_datetime], windows={"food_ration": 14})
    assert flag is not None
    assert set(flag.related_ids) == {naive.id, as_datetime.id}
