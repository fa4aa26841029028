"""Hybrid logical clocks (Kulkarni et al., 2014).

A timestamp is 48 bits of wall-clock milliseconds, a 16-bit counter and a 64-bit node id.
Its text form is 32 lowercase hex digits (``mmmmmmmmmmmmccccnnnnnnnnnnnnnnnn``), so the text
sorts exactly like the timestamp, as bytes and as ``str``; its integer form is the same
128 bits read as one number.

``Clock`` holds the state of one node and applies the send and receive rules. The rules never
let the clock run backwards, whatever the wall clock does (a tablet reset to 2001 keeps its
causal order); :func:`clamp` bounds a timestamp that claims to be too far in the future.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "HLC",
    "MAX_COUNTER",
    "MAX_MILLIS",
    "Clock",
    "HLCError",
    "clamp",
    "node_id_for",
]

MAX_MILLIS: Final = (1 << 48) - 1
MAX_COUNTER: Final = (1 << 16) - 1
MAX_NODE: Final = (1 << 64) - 1
_TEXT = re.compile(r"\A[0-9a-f]{32}\Z")


class HLCError(ValueError):
    """A timestamp's text form or one of its parts is out of range."""


@dataclass(frozen=True, order=True, slots=True)
class HLC:
    """One hybrid logical timestamp; instances order by (millis, counter, node)."""

    millis: int
    counter: int = 0
    node: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.millis <= MAX_MILLIS:
            raise HLCError("HLC milliseconds out of the 48-bit range")
        if not 0 <= self.counter <= MAX_COUNTER:
            raise HLCError("HLC counter out of the 16-bit range")
        if not 0 <= self.node <= MAX_NODE:
            raise HLCError("HLC node out of the 64-bit range")

    def __str__(self) -> str:
        return f"{self.millis:012x}{self.counter:04x}{self.node:016x}"

    def encode(self) -> str:
        """Return the 32-hex-digit text form, which sorts like the timestamp."""
        return str(self)

    def to_int(self) -> int:
        """Return the timestamp as one 128-bit integer with the same order."""
        return (self.millis << 80) | (self.counter << 64) | self.node

    @classmethod
    def decode(cls, text: str) -> HLC:
        """Parse the text form produced by :meth:`encode`.

        Raises:
            HLCError: when ``text`` is not 32 lowercase hex digits.
        """
        if not isinstance(text, str) or _TEXT.match(text) is None:
            raise HLCError("HLC must be 32 lowercase hex digits")
        return cls(int(text[:12], 16), int(text[12:16], 16), int(text[16:], 16))

    @classmethod
    def from_int(cls, value: int) -> HLC:
        """Inverse of :meth:`to_int`."""
        if not 0 <= value < 1 << 128:
            raise HLCError("HLC integer out of the 128-bit range")
        return cls(value >> 80, (value >> 64) & MAX_COUNTER, value & MAX_NODE)


def node_id_for(device_id: uuid.UUID) -> int:
    """Derive a node id from a device id.

    UUIDv7 begins with a timestamp, so two devices born in the same millisecond share
    their first bytes; the last 8 bytes are random and make the tie-break unique.
    """
    return int.from_bytes(device_id.bytes[8:], "big")


def _wall_millis() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class Clock:
    """The hybrid logical clock of one node (a tablet or the server).

    Args:
        node: this node's id, the tie-break between equal (millis, counter) pairs.
        last: the last timestamp issued or received, restored from storage.
        wall: a function returning wall-clock milliseconds; tests inject skewed clocks.
    """

    node: int
    last: HLC = field(default_factory=lambda: HLC(0, 0, 0))
    wall: Callable[[], int] = _wall_millis

    def now(self) -> HLC:
        """Send rule: a timestamp for a local event, greater than every earlier one."""
        physical = min(max(self.wall(), 0), MAX_MILLIS)
        if physical > self.last.millis:
            self.last = HLC(physical, 0, self.node)
        else:
            self.last = self._bump(self.last.millis, self.last.counter)
        return self.last

    def receive(self, remote: HLC) -> HLC:
        """Receive rule: merge a timestamp seen in a message; return the new local time."""
        physical = min(max(self.wall(), 0), MAX_MILLIS)
        millis = max(physical, self.last.millis, remote.millis)
        if millis == self.last.millis == remote.millis:
            self.last = self._bump(millis, max(self.last.counter, remote.counter))
        elif millis == self.last.millis:
            self.last = self._bump(millis, self.last.counter)
        elif millis == remote.millis:
            self.last = self._bump(millis, remote.counter)
        else:
            self.last = HLC(millis, 0, self.node)
        return self.last

    def _bump(self, millis: int, counter: int) -> HLC:
        # A full counter borrows the next millisecond rather than wrapping, which would
        # break monotonicity; at the end of the 48-bit range there is nowhere to go.
        if counter < MAX_COUNTER:
            return HLC(millis, counter + 1, self.node)
        if millis < MAX_MILLIS:
            return HLC(millis + 1, 0, self.node)
        raise HLCError("HLC exhausted: the clock reached the end of its range")


def clamp(stamp: HLC, *, limit: HLC) -> tuple[HLC, bool]:
    """Bound a timestamp that claims to be later than ``limit``.

    The server passes a fresh timestamp of its own clock, advanced by the tolerated skew,
    as ``limit``; a clamped value keeps the writer's node so that ties still break on it.

    Returns:
        The timestamp to store and whether it was clamped.
    """
    if stamp.millis <= limit.millis:
        return stamp, False
    return HLC(limit.millis, limit.counter, stamp.node), True
