"""The server's hybrid logical clock: one per process.

Each process draws a random node id, so two workers never issue the same timestamp. The clock
receives every timestamp the server stores, so a coordinator's edit is stamped after everything
the server has seen and wins over it.
"""

from __future__ import annotations

import secrets
import threading

from campsync_sync import HLC, Clock

_lock = threading.Lock()
_clock = Clock(node=secrets.randbits(64))


def now() -> HLC:
    with _lock:
        return _clock.now()


def receive(stamp: HLC | str) -> HLC:
    with _lock:
        return _clock.receive(HLC.decode(stamp) if isinstance(stamp, str) else stamp)
