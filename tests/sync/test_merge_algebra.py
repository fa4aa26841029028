"""S8 and DESIGN.md section 4: the registry state is a join-semilattice, so replicas converge.

Every property compares states through their canonical JSON, which is stricter than ``==``
(``1 == True`` in Python, not on the wire).
"""

from __future__ import annotations

from campsync_sync import Entity, RecordState, apply_registry_op, join, op_state
from hypothesis import given
from hypothesis import strategies as st

from .strategies import PROPERTY, canonical, op_lists, record_states, registry_ops

states = record_states(erased=None)


@PROPERTY
@given(states, states)
def test_join_is_commutative(a: RecordState, b: RecordState) -> None:
    assert canonical(join(a, b)) == canonical(join(b, a))


@PROPERTY
@given(states, states, states)
def test_join_is_associative(a: RecordState, b: RecordState, c: RecordState) -> None:
    assert canonical(join(join(a, b), c)) == canonical(join(a, join(b, c)))


@PROPERTY
@given(states)
def test_join_is_idempotent(a: RecordState) -> None:
    assert canonical(join(a, a)) == canonical(a)


@PROPERTY
@given(states, states)
def test_join_is_an_upper_bound_and_leaves_its_inputs_alone(a: RecordState, b: RecordState) -> None:
    before_a, before_b = canonical(a), canonical(b)
    upper = join(a, b)
    assert canonical(join(upper, a)) == canonical(upper)
    assert canonical(join(upper, b)) == canonical(upper)
    assert (canonical(a), canonical(b)) == (before_a, before_b)


@PROPERTY
@given(record_states(), registry_ops)
def test_apply_is_join_with_the_operation_state(state: RecordState, op) -> None:
    before = canonical(state)
    after, _ = apply_registry_op(Entity.PERSON, state, op)
    assert canonical(after) == canonical(join(state, op_state(op)))
    assert canonical(state) == before, "the input state must not change"


def apply_all(ops, state: RecordState | None = None) -> RecordState | None:
    for op in ops:
        state, _ = apply_registry_op(Entity.PERSON, state, op)
    return state


@PROPERTY
@given(op_lists(min_size=2), st.randoms(use_true_random=False))
def test_any_permutation_and_duplication_converges(ops, rnd) -> None:
    reference = apply_all(ops)
    shuffled = ops + rnd.sample(ops, k=rnd.randint(0, len(ops)))  # some delivered twice
    rnd.shuffle(shuffled)
    assert canonical(apply_all(shuffled)) == canonical(reference)


@PROPERTY
@given(op_lists(min_size=2), st.randoms(use_true_random=False))
def test_any_regrouping_converges(ops, rnd) -> None:
    """Replicas that each saw some of the operations, joined in any order, agree."""
    reference = apply_all(ops)
    groups: list[list] = [[] for _ in range(rnd.randint(1, 4))]
    for op in ops:
        for group in rnd.sample(groups, k=rnd.randint(1, len(groups))):
            group.append(op)  # an operation can reach several replicas
    for group in groups:
        if not group:
            group.append(rnd.choice(ops))
    replicas = [apply_all(group) for group in groups]
    rnd.shuffle(replicas)
    merged = replicas[0]
    for replica in replicas[1:]:
        merged = join(merged, replica)
    assert canonical(merged) == canonical(reference)


@PROPERTY
@given(op_lists(min_size=1, max_size=6), op_lists(max_size=6))
def test_a_replica_folding_pending_operations_into_a_pulled_state_converges(
    pulled, pending
) -> None:
    """What a tablet does: server state joined with its own unsent operations."""
    server = apply_all(pulled + pending)
    tablet = join(apply_all(pulled), apply_all(pending) or RecordState())
    assert canonical(tablet) == canonical(server)


@PROPERTY
@given(op_lists())
def test_deleted_means_the_latest_delete_is_after_the_latest_restore(ops) -> None:
    state = apply_all(ops) or RecordState()
    deletes = [op.hlc for op in ops if op.op == "delete"]
    restores = [op.hlc for op in ops if op.op == "restore"]
    expected = bool(deletes) and (not restores or max(deletes) > max(restores))
    assert state.is_deleted is expected


@PROPERTY
@given(record_states(), record_states(erased=True))
def test_erasure_absorbs_and_drops_personal_data(state: RecordState, erased: RecordState) -> None:
    for joined in (join(state, erased), join(erased, state)):
        assert joined.erased
        assert joined.is_deleted
        assert (joined.values, joined.clocks, joined.sets) == ({}, {}, {})
