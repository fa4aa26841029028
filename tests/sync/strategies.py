"""Hypothesis strategies and settings shared by the protocol's property tests.

Runs are deterministic (``derandomize``): CI sees the same examples every time, and a failure
reproduces. ``CAMPSYNC_SLOW=1`` raises the example count to the reference figure of the test
matrix (S8: 10,000 per property); the default keeps ``tests/sync`` fast on a 2-core machine.
Settings are applied per test, never through a global profile, so that loading this module
changes nothing for other test directories.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict
from typing import Any

from campsync_sync import HLC, DeleteOp, FieldWrite, PatchOp, RecordState, RestoreOp, SetChange
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

SLOW = bool(os.environ.get("CAMPSYNC_SLOW"))

PROPERTY = settings(
    max_examples=10_000 if SLOW else 300,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
"""For the algebraic properties (join, convergence, HLC)."""

QUICK = settings(max_examples=2_000 if SLOW else 150, derandomize=True, deadline=None)
"""For properties whose examples are expensive (crypto)."""

# Small pools make collisions likely: equal clocks, equal fields, the same element twice.
NODES = (0x1111, 0x2222, 0x3333)
FIELDS = ("given_name", "phone", "status")  # an identity field and two others
SET_FIELDS = ("vulnerabilities",)
ELEMENTS = ("disability", "single_parent", "chronic_illness")
RECORD = uuid.UUID("01890a5d-ac96-774b-bcce-b302099a8057")


HLC_POOL = tuple(str(HLC(m, c, n)) for m in range(3) for c in range(2) for n in NODES)


def hlcs() -> st.SearchStrategy[str]:
    """HLC text forms drawn from a small pool, so that ties happen."""
    return st.sampled_from(HLC_POOL)


json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 2),
    st.sampled_from(["x", "y", "Mohammad", "محمد"]),
    st.lists(st.integers(0, 1), max_size=2),
)
"""Values whose Python equality is looser than their JSON (1 == True): the merge must not be."""


# Strategies are built once: building one inside a composite costs more than drawing from it.
_optional_hlcs = st.none() | hlcs()
_written = st.dictionaries(st.sampled_from(FIELDS), st.tuples(json_values, hlcs()))
_sets = st.dictionaries(
    st.sampled_from(SET_FIELDS),
    st.dictionaries(st.sampled_from(ELEMENTS), st.tuples(st.booleans(), hlcs())),
)


@st.composite
def record_states(draw: st.DrawFn, *, erased: bool | None = False) -> RecordState:
    """A valid state: clocks for exactly the written fields; nothing kept once erased."""
    is_erased = draw(st.booleans()) if erased is None else erased
    deleted, restored = draw(_optional_hlcs), draw(_optional_hlcs)
    if is_erased:
        return RecordState(deleted=deleted, restored=restored, erased=True)
    written, sets = draw(_written), draw(_sets)
    values = {name: value for name, (value, _) in written.items()}
    clocks = {name: hlc for name, (_, hlc) in written.items()}
    return RecordState(values, clocks, sets, deleted, restored)


op_ids = st.uuids(version=4)


def make_registry_ops(stamps: st.SearchStrategy[str]) -> st.SearchStrategy:
    """Patch, delete and restore operations on one record, clocks drawn from ``stamps``."""
    field_writes = st.builds(FieldWrite, value=json_values, hlc=stamps, base=st.none() | stamps)
    set_changes = st.builds(
        SetChange, element=st.sampled_from(ELEMENTS), present=st.booleans(), hlc=stamps
    )
    patches = st.builds(
        PatchOp,
        op_id=op_ids,
        entity=st.just("person"),
        id=st.just(RECORD),
        fields=st.dictionaries(st.sampled_from(FIELDS), field_writes, min_size=1, max_size=3),
        sets=st.dictionaries(st.sampled_from(SET_FIELDS), st.lists(set_changes, max_size=3)),
    )
    deletes = st.builds(
        DeleteOp,
        op_id=op_ids,
        entity=st.just("person"),
        id=st.just(RECORD),
        hlc=stamps,
        reason=st.just("duplicate"),
        base=st.dictionaries(st.sampled_from((*FIELDS, "vulnerabilities:disability")), stamps),
    )
    restores = st.builds(
        RestoreOp, op_id=op_ids, entity=st.just("person"), id=st.just(RECORD), hlc=stamps
    )
    return st.one_of(patches, patches, deletes, restores)


registry_ops = make_registry_ops(hlcs())
# Two clocks only: writes tie, and only the value tie-break orders them.
tied_registry_ops = make_registry_ops(st.sampled_from(HLC_POOL[:2]))


def op_lists(min_size: int = 0, max_size: int = 8) -> st.SearchStrategy[list]:
    """Lists of operations on one record, half of them with clocks that tie."""
    return st.one_of(
        st.lists(registry_ops, min_size=min_size, max_size=max_size),
        st.lists(tied_registry_ops, min_size=min_size, max_size=max_size),
    )


def canonical(state: RecordState) -> str:
    """A state as canonical JSON: equal only if equal as the wire would see them."""

    def default(value: Any) -> Any:
        return list(value) if isinstance(value, tuple) else str(value)

    return json.dumps(asdict(state), sort_keys=True, default=default)
