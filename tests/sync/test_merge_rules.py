"""The merge rules case by case: classification, conflicts, tombstones, erasure (DESIGN.md §4)."""

from __future__ import annotations

import uuid

import pytest
from campsync_sync import (
    HLC,
    DeleteOp,
    Entity,
    FieldWrite,
    Outcome,
    PatchOp,
    RecordState,
    Rejected,
    RejectReason,
    RestoreOp,
    RowState,
    SetChange,
    VoidOp,
    apply_registry_op,
    latest_clock,
    op_state,
    record_state_from_row,
    record_state_to_row,
)
from campsync_sync.merge import CONFLICT_NAMESPACE

A, B = 0xA, 0xB  # two tablets
RID = uuid.UUID("01890a5d-ac96-774b-bcce-b302099a8057")


def h(millis: int, node: int = A, counter: int = 0) -> str:
    return str(HLC(millis, counter, node))


def patch(fields=None, sets=None, op_id: uuid.UUID | None = None) -> PatchOp:
    return PatchOp(
        op_id=op_id or uuid.uuid4(),
        entity="person",
        id=RID,
        fields={
            name: FieldWrite(value=v, hlc=t, base=b) for name, (v, t, b) in (fields or {}).items()
        },
        sets={
            name: [SetChange(element=e, present=p, hlc=t) for e, p, t in changes]
            for name, changes in (sets or {}).items()
        },
    )


def apply(state, op):
    return apply_registry_op(Entity.PERSON, state, op)


def created(**values) -> RecordState:
    """A record created by tablet A at time 10."""
    state, _ = apply(None, patch({k: (v, h(10), None) for k, v in values.items()}))
    return state


def test_the_latest_clock_of_an_operation_is_its_greatest_stamp() -> None:
    edit = patch({"given_name": ("Ahmad", h(30), None), "sex": ("male", h(20), None)})
    assert latest_clock(edit) == h(30)
    assert latest_clock(patch(sets={"vulnerabilities": [("disability", True, h(40))]})) == h(40)
    assert latest_clock(patch()) == "0" * 32
    delete = DeleteOp(op_id=uuid.uuid4(), entity="person", id=RID, hlc=h(50), reason="duplicate")
    assert latest_clock(delete) == h(50)
    assert latest_clock(RestoreOp(op_id=uuid.uuid4(), entity="person", id=RID, hlc=h(60))) == h(60)
    void = VoidOp(op_id=uuid.uuid4(), entity="referral", id=RID, hlc=h(70), reason="error")
    assert latest_clock(void) == h(70)


# ------------------------------------------------------------------------- creation, edits


def test_a_patch_on_an_unknown_record_creates_it() -> None:
    state, effect = apply(
        None,
        patch(
            {"given_name": ("Ahmad", h(1), None)},
            {"vulnerabilities": [("disability", True, h(1)), ("single_parent", False, h(1))]},
        ),
    )
    assert (effect.outcome, effect.kind) == (Outcome.APPLIED, "create")
    assert effect.changes == {
        "given_name": "Ahmad",
        "vulnerabilities:disability": True,
        "vulnerabilities:single_parent": False,
    }
    assert state.values == {"given_name": "Ahmad"}
    assert state.clocks == {"given_name": h(1)}
    assert state.members("vulnerabilities") == ["disability"]
    assert state.members("unknown") == []


def test_an_empty_patch_creates_an_empty_record_and_changes_nothing_later() -> None:
    state, effect = apply(None, patch())
    assert (effect.outcome, effect.kind, state) == (Outcome.APPLIED, "create", RecordState())
    _, effect = apply(created(given_name="A"), patch())
    assert (effect.outcome, effect.kind) == (Outcome.APPLIED, "noop")


def test_an_edit_based_on_the_current_value_fast_forwards() -> None:
    state, effect = apply(
        created(given_name="Ahmad"), patch({"given_name": ("Ahmed", h(20, B), h(10))})
    )
    assert (effect.outcome, effect.kind, effect.changes) == (
        Outcome.APPLIED,
        "update",
        {"given_name": "Ahmed"},
    )
    assert state.values["given_name"] == "Ahmed"
    assert not effect.conflicts


def test_a_device_overwriting_its_own_value_fast_forwards_without_a_base() -> None:
    _, effect = apply(created(given_name="Ahmad"), patch({"given_name": ("Ahmed", h(20), None)}))
    assert effect.outcome is Outcome.APPLIED
    assert not effect.conflicts


def test_a_fast_forward_with_an_older_clock_loses_and_says_so() -> None:
    # Only a client that did not merge the clock it saw can do this: LWW still decides.
    state, effect = apply(
        created(given_name="Ahmad"), patch({"given_name": ("Ahmed", h(5, B), h(10))})
    )
    assert (effect.outcome, effect.kind, state.values["given_name"]) == (
        Outcome.MERGED,
        "noop",
        "Ahmad",
    )


def test_concurrent_edits_of_an_ordinary_field_merge_silently_by_clock() -> None:
    base = created(phone="+93700000001")
    later, effect = apply(base, patch({"phone": ("+93700000002", h(20, B), None)}))
    assert (effect.outcome, later.values["phone"]) == (Outcome.MERGED, "+93700000002")
    earlier, effect = apply(base, patch({"phone": ("+93700000003", h(5, B), None)}))
    assert (effect.outcome, effect.kind, earlier.values["phone"]) == (
        Outcome.MERGED,
        "noop",
        "+93700000001",
    )
    assert not effect.conflicts


@pytest.mark.parametrize(
    ("stamp", "winner", "value"), [(h(20, B), "incoming", "Ahmed"), (h(5, B), "current", "Ahmad")]
)
def test_concurrent_edits_of_an_identity_field_open_a_conflict(stamp, winner, value) -> None:
    op = patch({"given_name": ("Ahmed", stamp, h(3))})
    state, effect = apply(created(given_name="Ahmad"), op)
    assert effect.outcome is Outcome.CONFLICT
    assert state.values["given_name"] == value
    (conflict,) = effect.conflicts
    assert conflict.id == uuid.uuid5(CONFLICT_NAMESPACE, f"{op.op_id}:given_name")
    assert (conflict.kind, conflict.field, conflict.winner) == ("field", "given_name", winner)
    assert (conflict.current_value, conflict.current_hlc) == ("Ahmad", h(10))
    assert (conflict.incoming_value, conflict.incoming_hlc) == ("Ahmed", stamp)
    assert (conflict.entity, conflict.entity_id, conflict.op_id) == (Entity.PERSON, RID, op.op_id)
    # Deterministic: the same operation on the same state opens the same conflict, no twin.
    assert apply(created(given_name="Ahmad"), op)[1].conflicts == [conflict]


def test_concurrent_identical_values_do_not_conflict() -> None:
    _, effect = apply(created(given_name="Ahmad"), patch({"given_name": ("Ahmad", h(20, B), None)}))
    assert effect.outcome is Outcome.MERGED
    assert not effect.conflicts


def test_a_replayed_edit_is_applied_and_changes_nothing() -> None:
    op = patch(
        {"given_name": ("Ahmed", h(20, B), h(10))},
        {"vulnerabilities": [("disability", True, h(20, B))]},
    )
    once, _ = apply(created(given_name="Ahmad"), op)
    twice, effect = apply(once, op)
    assert (effect.outcome, effect.kind, effect.changes, twice) == (
        Outcome.APPLIED,
        "noop",
        {},
        once,
    )


def test_equal_clocks_with_different_values_break_on_the_value() -> None:
    # Only a cloned device can write two values under one clock; every replica picks the same.
    state = created(given_name="Ahmad")
    bigger, effect = apply(state, patch({"given_name": ("Zahir", h(10), None)}))
    assert (bigger.values["given_name"], effect.outcome) == ("Zahir", Outcome.APPLIED)
    smaller, effect = apply(state, patch({"given_name": ("Abdul", h(10), None)}))
    assert (smaller.values["given_name"], effect.outcome) == ("Ahmad", Outcome.MERGED)


def test_set_elements_merge_per_element_and_never_conflict() -> None:
    state, _ = apply(None, patch(sets={"vulnerabilities": [("disability", True, h(10))]}))
    state, effect = apply(
        state, patch(sets={"vulnerabilities": [("single_parent", True, h(11, B))]})
    )
    assert effect.outcome is Outcome.APPLIED
    state, effect = apply(state, patch(sets={"vulnerabilities": [("disability", False, h(5, B))]}))
    assert (effect.outcome, effect.kind) == (Outcome.MERGED, "noop")
    assert state.members("vulnerabilities") == ["disability", "single_parent"]
    # At one clock a removal loses to an addition: (hlc, present) orders them.
    state, _ = apply(state, patch(sets={"vulnerabilities": [("disability", False, h(10))]}))
    assert "disability" in state.members("vulnerabilities")


def test_changes_within_one_operation_keep_the_latest_per_element() -> None:
    ops = [("disability", True, h(3)), ("disability", False, h(4)), ("disability", True, h(2))]
    state, effect = apply(created(given_name="A"), patch(sets={"vulnerabilities": ops}))
    assert state.sets == {"vulnerabilities": {"disability": (False, h(4))}}
    assert effect.outcome is Outcome.MERGED  # the last change of the three lost


# ------------------------------------------------------------------------- deletes


def test_a_delete_that_saw_everything_applies() -> None:
    state = created(given_name="Ahmad")
    op = DeleteOp(
        op_id=uuid.uuid4(),
        entity="person",
        id=RID,
        hlc=h(20, B),
        reason="duplicate",
        base={"given_name": h(10)},
    )
    after, effect = apply(state, op)
    assert (effect.outcome, effect.kind, effect.changes) == (
        Outcome.APPLIED,
        "delete",
        {"deleted": h(20, B)},
    )
    assert after.is_deleted
    assert after.values == state.values


def test_a_delete_wins_over_concurrent_edits_which_are_kept_in_a_conflict() -> None:
    state = created(given_name="Ahmad", phone="+93700000001")
    state, _ = apply(
        state,
        patch(
            {"phone": ("+93700000002", h(15, B), h(10))},
            {"vulnerabilities": [("disability", True, h(16, B))]},
        ),
    )
    op = DeleteOp(
        op_id=uuid.uuid4(),
        entity="person",
        id=RID,
        hlc=h(12),
        reason="duplicate",
        base={"given_name": h(10)},
    )
    after, effect = apply(state, op)
    assert after.is_deleted, "delete wins even with an older clock than the edit"
    assert (effect.outcome, effect.kind) == (Outcome.CONFLICT, "delete")
    (conflict,) = effect.conflicts
    assert conflict.kind == "delete"
    assert conflict.winner == "incoming"
    assert conflict.fields == ("phone", "vulnerabilities:disability")
    assert conflict.current_value == {"phone": "+93700000002", "vulnerabilities:disability": True}
    assert (conflict.current_hlc, conflict.incoming_hlc) == (h(16, B), h(12))
    assert conflict.id == uuid.uuid5(CONFLICT_NAMESPACE, f"{op.op_id}:delete")


def test_a_delete_based_on_everything_seen_applies_even_with_set_elements() -> None:
    state = created(given_name="Ahmad")
    state, _ = apply(state, patch(sets={"vulnerabilities": [("disability", True, h(16, B))]}))
    assert state.seen() == {"given_name": h(10), "vulnerabilities:disability": h(16, B)}
    op = DeleteOp(
        op_id=uuid.uuid4(),
        entity="person",
        id=RID,
        hlc=h(20, B),
        reason="duplicate",
        base=state.seen(),
    )
    assert apply(state, op)[1].outcome is Outcome.APPLIED
    scalars_only = op.model_copy(update={"base": dict(state.clocks), "op_id": uuid.uuid4()})
    state_b, _ = apply(state, patch(sets={"vulnerabilities": [("disability", False, h(17))]}))
    assert apply(state_b, scalars_only)[1].outcome is Outcome.CONFLICT


def test_a_delete_does_not_conflict_with_the_deleting_devices_own_edits() -> None:
    state = created(given_name="Ahmad")
    op = DeleteOp(op_id=uuid.uuid4(), entity="person", id=RID, hlc=h(20), reason="duplicate")
    assert apply(state, op)[1].outcome is Outcome.APPLIED


def test_a_delete_of_an_unknown_record_leaves_a_tombstone() -> None:
    op = DeleteOp(op_id=uuid.uuid4(), entity="person", id=RID, hlc=h(20), reason="duplicate")
    state, effect = apply(None, op)
    assert (effect.outcome, effect.kind, state.is_deleted) == (Outcome.APPLIED, "delete", True)


def test_a_second_delete_changes_nothing_visible() -> None:
    first = DeleteOp(op_id=uuid.uuid4(), entity="person", id=RID, hlc=h(20), reason="duplicate")
    second = first.model_copy(update={"op_id": uuid.uuid4(), "hlc": h(30, B)})
    state, _ = apply(created(given_name="A"), first)
    state, effect = apply(state, second)
    assert (effect.outcome, effect.kind, state.deleted) == (Outcome.APPLIED, "noop", h(30, B))


def test_a_delete_older_than_a_restore_loses() -> None:
    deleted, _ = apply(
        created(given_name="A"),
        DeleteOp(op_id=uuid.uuid4(), entity="person", id=RID, hlc=h(20), reason="other"),
    )
    restored, _ = apply(deleted, RestoreOp(op_id=uuid.uuid4(), entity="person", id=RID, hlc=h(30)))
    state, effect = apply(
        restored,
        DeleteOp(op_id=uuid.uuid4(), entity="person", id=RID, hlc=h(25, B), reason="other"),
    )
    assert (effect.outcome, effect.kind, state.is_deleted) == (Outcome.MERGED, "noop", False)


def test_an_edit_never_resurrects_and_is_kept_in_a_conflict() -> None:
    state, _ = apply(
        created(given_name="Ahmad"),
        DeleteOp(op_id=uuid.uuid4(), entity="person", id=RID, hlc=h(20), reason="duplicate"),
    )
    op = patch(
        {"given_name": ("Ahmed", h(30, B), h(10))},
        {"vulnerabilities": [("disability", True, h(30, B))]},
    )
    after, effect = apply(state, op)
    assert after.is_deleted
    assert (effect.outcome, effect.kind) == (Outcome.CONFLICT, "update")
    (conflict,) = effect.conflicts
    assert (conflict.kind, conflict.winner, conflict.current_hlc) == (
        "edit_on_deleted",
        "current",
        h(20),
    )
    assert conflict.incoming_value == {"given_name": "Ahmed", "vulnerabilities:disability": True}
    assert conflict.fields == ("given_name", "vulnerabilities:disability")
    assert conflict.incoming_hlc == h(30, B)
    # The same edit again, and an edit that changes nothing, open nothing more.
    assert apply(after, op)[1].conflicts == []
    assert apply(after, patch())[1].outcome is Outcome.APPLIED


def test_an_edit_that_loses_on_a_tombstone_is_still_kept() -> None:
    state, _ = apply(
        created(given_name="Ahmad"),
        DeleteOp(op_id=uuid.uuid4(), entity="person", id=RID, hlc=h(20), reason="duplicate"),
    )
    op = patch(sets={"vulnerabilities": [("disability", True, h(1, B))]})
    state, _ = apply(state, patch(sets={"vulnerabilities": [("disability", False, h(5))]}))
    _, effect = apply(state, op)
    assert effect.conflicts[0].incoming_hlc == h(1, B)


# ------------------------------------------------------------------------- restore, erasure


def test_a_restore_undoes_a_delete_and_a_later_delete_wins_again() -> None:
    deleted, _ = apply(
        created(given_name="A"),
        DeleteOp(op_id=uuid.uuid4(), entity="person", id=RID, hlc=h(20), reason="other"),
    )
    restored, effect = apply(
        deleted, RestoreOp(op_id=uuid.uuid4(), entity="person", id=RID, hlc=h(30))
    )
    assert (effect.outcome, effect.kind, effect.changes) == (
        Outcome.APPLIED,
        "restore",
        {"restored": h(30)},
    )
    assert not restored.is_deleted
    stale, effect = apply(
        deleted, RestoreOp(op_id=uuid.uuid4(), entity="person", id=RID, hlc=h(15))
    )
    assert (effect.outcome, effect.kind, stale.is_deleted) == (Outcome.MERGED, "noop", True)
    live, effect = apply(
        created(given_name="A"), RestoreOp(op_id=uuid.uuid4(), entity="person", id=RID, hlc=h(15))
    )
    assert (effect.outcome, effect.kind, live.restored) == (Outcome.APPLIED, "noop", h(15))


def test_an_erased_record_refuses_every_operation() -> None:
    erased = RecordState(deleted=h(1), erased=True)
    for op in (
        patch({"given_name": ("A", h(2), None)}),
        RestoreOp(op_id=uuid.uuid4(), entity="person", id=RID, hlc=h(3)),
    ):
        with pytest.raises(Rejected) as caught:
            apply(erased, op)
        assert caught.value.reason is RejectReason.ERASED
        assert str(caught.value) == "erased: the record was erased"


def test_the_input_state_is_never_changed() -> None:
    state = created(given_name="Ahmad")
    state, _ = apply(state, patch(sets={"vulnerabilities": [("disability", True, h(11))]}))
    snapshot = state.copy()
    for op in (
        patch(
            {"given_name": ("X", h(30, B), None)},
            {"vulnerabilities": [("disability", False, h(31))]},
        ),
        DeleteOp(op_id=uuid.uuid4(), entity="person", id=RID, hlc=h(40), reason="other"),
        RestoreOp(op_id=uuid.uuid4(), entity="person", id=RID, hlc=h(50)),
    ):
        apply(state, op)
        assert state == snapshot


# ------------------------------------------------------------------------- states


def test_op_state_denotes_each_kind_of_operation() -> None:
    assert op_state(
        DeleteOp(op_id=uuid.uuid4(), entity="person", id=RID, hlc=h(1), reason="other")
    ) == RecordState(deleted=h(1))
    assert op_state(
        RestoreOp(op_id=uuid.uuid4(), entity="person", id=RID, hlc=h(2))
    ) == RecordState(restored=h(2))
    assert op_state(patch({"sex": ("female", h(3), h(1))})) == RecordState(
        {"sex": "female"}, {"sex": h(3)}
    )


def test_record_state_helpers() -> None:
    state = RecordState(
        {"given_name": "A"},
        {"given_name": h(3)},
        {"vulnerabilities": {"disability": (True, h(7)), "single_parent": (False, h(2))}},
        deleted=h(5),
        restored=h(6),
    )
    assert state.max_clock() == h(7)
    assert RecordState().max_clock() is None
    assert not state.is_deleted
    assert RecordState(deleted=h(1)).is_deleted
    assert RecordState(erased=True).is_deleted
    copy = state.copy()
    copy.sets["vulnerabilities"]["disability"] = (False, h(9))
    copy.values["given_name"] = "B"
    assert state.sets["vulnerabilities"]["disability"] == (True, h(7))
    assert state.values["given_name"] == "A"


def test_pull_rows_round_trip_record_states() -> None:
    state = RecordState(
        {"given_name": "Ahmad", "household_id": str(RID)},
        {"given_name": h(3), "household_id": h(1)},
        {"vulnerabilities": {"disability": (True, h(7))}},
        deleted=h(5),
    )
    row = record_state_to_row(Entity.PERSON, RID, 42, state)
    assert row.is_deleted
    assert row.seq == 42
    assert RowState.model_validate_json(row.model_dump_json()) == row
    assert record_state_from_row(row) == state
    assert RowState(entity=Entity.PERSON, id=RID, seq=1, erased=True).is_deleted
    assert not RowState(entity=Entity.PERSON, id=RID, seq=1, deleted=h(1), restored=h(2)).is_deleted
