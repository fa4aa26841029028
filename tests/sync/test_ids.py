"""UUIDv7 ids (RFC 9562): time-ordered, version 7, RFC 4122 variant, random tail."""

from __future__ import annotations

import time
import uuid

from campsync_sync import uuid7


def test_layout() -> None:
    value = uuid7(millis=0x0123_4567_89AB)
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert value.int >> 80 == 0x0123_4567_89AB


def test_time_ordered_across_milliseconds_and_unique() -> None:
    ids = [uuid7(millis=ms) for ms in range(1000, 1100)]
    assert ids == sorted(ids)
    assert len({uuid7(millis=5) for _ in range(1000)}) == 1000


def test_uses_the_current_time_by_default() -> None:
    before = time.time_ns() // 1_000_000
    stamp = uuid7().int >> 80
    assert before <= stamp <= time.time_ns() // 1_000_000
