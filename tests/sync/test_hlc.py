"""Hybrid logical clocks: encoding order, send and receive rules, wild wall clocks."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from campsync_sync import HLC, Clock, HLCError, clamp, node_id_for
from campsync_sync.hlc import MAX_COUNTER, MAX_MILLIS, MAX_NODE
from hypothesis import given
from hypothesis import strategies as st

from .strategies import PROPERTY


def ms(year: int) -> int:
    return int(dt.datetime(year, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)


Y2001, Y2026, Y2035 = ms(2001), ms(2026), ms(2035)

stamps = st.builds(
    HLC, st.integers(0, MAX_MILLIS), st.integers(0, MAX_COUNTER), st.integers(0, MAX_NODE)
)
# Wall clocks as tablets have them: right, years off either way, stuck, or running backwards.
walls = st.one_of(
    st.integers(Y2026 - 60_000, Y2026 + 60_000),
    st.sampled_from([0, Y2001, Y2035, MAX_MILLIS, -5, MAX_MILLIS + 10]),
    st.integers(Y2001, Y2035),
)


@PROPERTY
@given(stamps, stamps)
def test_text_and_integer_forms_sort_like_the_timestamp(a: HLC, b: HLC) -> None:
    assert (a < b) == (a.encode() < b.encode()) == (a.to_int() < b.to_int())
    assert (a < b) == (a.encode().encode() < b.encode().encode())  # as bytes too
    assert HLC.decode(a.encode()) == a == HLC.from_int(a.to_int())
    assert len(a.encode()) == 32
    assert str(a) == a.encode()


@PROPERTY
@given(st.lists(st.tuples(st.booleans(), walls, stamps), min_size=1, max_size=40))
def test_the_clock_is_strictly_monotonic_whatever_the_wall_clock_does(events) -> None:
    """Send and receive events under wall clocks jumping between 2001, 2035 and garbage."""
    readings = iter(wall for _, wall, _ in events)
    clock = Clock(node=7, wall=lambda: next(readings))
    issued: list[HLC] = []
    for is_receive, _, remote in events:
        remote = HLC(min(remote.millis, MAX_MILLIS - 1), remote.counter, remote.node)
        stamp = clock.receive(remote) if is_receive else clock.now()
        if is_receive:
            assert stamp > HLC(remote.millis, remote.counter, 0), "receive is after what it saw"
        assert stamp.node == 7
        issued.append(stamp)
    assert issued == sorted(issued)
    assert len(set(issued)) == len(issued)


def test_send_rule() -> None:
    wall = [Y2026]
    clock = Clock(node=1, wall=lambda: wall[0])
    assert clock.now() == HLC(Y2026, 0, 1)
    assert clock.now() == HLC(Y2026, 1, 1)  # same millisecond: the counter moves
    wall[0] = Y2001  # a tablet reset to 2001
    assert clock.now() == HLC(Y2026, 2, 1)
    wall[0] = Y2026 + 5
    assert clock.now() == HLC(Y2026 + 5, 0, 1)


def test_receive_rules() -> None:
    wall = [100]
    clock = Clock(node=1, last=HLC(100, 4, 1), wall=lambda: wall[0])
    assert clock.receive(HLC(100, 9, 2)) == HLC(100, 10, 1)  # all equal: max counter + 1
    assert clock.receive(HLC(50, 99, 2)) == HLC(100, 11, 1)  # local ahead
    assert clock.receive(HLC(300, 3, 2)) == HLC(300, 4, 1)  # remote ahead
    wall[0] = 400
    assert clock.receive(HLC(350, 3, 2)) == HLC(400, 0, 1)  # wall ahead of both


def test_a_full_counter_borrows_the_next_millisecond_and_the_end_is_an_error() -> None:
    clock = Clock(node=1, last=HLC(10, MAX_COUNTER, 1), wall=lambda: 0)
    assert clock.now() == HLC(11, 0, 1)
    end = Clock(node=1, last=HLC(MAX_MILLIS, MAX_COUNTER, 1), wall=lambda: 0)
    with pytest.raises(HLCError, match="exhausted"):
        end.now()


def test_the_default_clock_reads_real_time() -> None:
    clock = Clock(node=3)
    stamp = clock.now()
    assert abs(stamp.millis - dt.datetime.now(dt.UTC).timestamp() * 1000) < 60_000
    assert clock.last == stamp
    assert stamp.node == 3


@pytest.mark.parametrize(
    "text",
    ["", "0" * 31, "0" * 33, "G" * 32, "A" * 32, " " + "0" * 31, "0" * 32 + "\n", 5, None],
)
def test_decode_refuses_anything_but_32_lowercase_hex_digits(text) -> None:
    with pytest.raises(HLCError):
        HLC.decode(text)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "parts",
    [
        (-1, 0, 0),
        (MAX_MILLIS + 1, 0, 0),
        (0, -1, 0),
        (0, MAX_COUNTER + 1, 0),
        (0, 0, -1),
        (0, 0, MAX_NODE + 1),
    ],
)
def test_parts_out_of_range_are_refused(parts) -> None:
    with pytest.raises(HLCError):
        HLC(*parts)


def test_integer_form_out_of_range_is_refused() -> None:
    with pytest.raises(HLCError):
        HLC.from_int(1 << 128)
    with pytest.raises(HLCError):
        HLC.from_int(-1)


def test_clamp_bounds_stamps_from_the_future_and_keeps_the_writer() -> None:
    limit = HLC(Y2026 + 600_000, 3, 99)
    future = HLC(Y2035, 0, 7)
    assert clamp(future, limit=limit) == (HLC(Y2026 + 600_000, 3, 7), True)
    fine = HLC(Y2026, 5, 7)
    assert clamp(fine, limit=limit) == (fine, False)
    assert clamp(HLC(limit.millis, 9, 7), limit=limit) == (HLC(limit.millis, 9, 7), False)


def test_node_ids_come_from_the_random_tail_of_the_device_id() -> None:
    device = uuid.UUID("01890a5d-ac96-774b-bcce-b302099a8057")
    assert node_id_for(device) == 0xBCCE_B302_099A_8057
    twin = uuid.UUID("01890a5d-ac96-774b-0cce-b302099a8057")  # same millisecond, other tail
    assert node_id_for(twin) != node_id_for(device)
