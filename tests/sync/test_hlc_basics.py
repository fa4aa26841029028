from __future__ import annotations

from campsync_sync import HLC, Clock


def test_text_form_sorts_like_the_timestamp() -> None:
    a, b = HLC(1, 2, 3), HLC(1, 3, 0)
    assert a < b
    assert a.encode() < b.encode()
    assert HLC.decode(a.encode()) == a


def test_clock_is_monotonic_when_the_wall_clock_goes_back() -> None:
    walls = iter([1000, 999, 5])
    clock = Clock(node=7, wall=lambda: next(walls))
    stamps = [clock.now() for _ in range(3)]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == 3
