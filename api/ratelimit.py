"""Failed attempts per key, with exponential backoff, in this process (OWASP API2).

A fixed lock after N failures lets anyone lock anyone out: ten wrong passwords, or ten bad
signatures naming a tablet's id, and the real user or tablet waited 15 minutes (issue 14).
Here each key (a user and address pair, an address, a user, a device) has a few free
failures; every failure after them makes the key wait twice as long as the last, up to a
ceiling, and a quiet spell forgets it. The callers choose keys so that the attacker's own
keys (their address, their pair) fill first, long before a key the real user shares.

An attempt is counted as a failure when it *starts* (:meth:`Backoff.begin`) and the count is
given back when it succeeds, so a burst of simultaneous attempts cannot all pass the check
before any failure is recorded: at most ``free + 1`` get through, never 40 of a limit of 10.
Counts live in memory: with ``--workers N`` each worker keeps its own.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from campsync_sync import ErrorCode

from api.errors import DomainError


@dataclass(slots=True)
class _Key:
    failures: int = 0
    blocked_until: float = 0.0
    last: float = 0.0


@dataclass(frozen=True, slots=True)
class Attempt:
    """An attempt under way: give it to :meth:`Backoff.succeeded` when it succeeds."""

    keys: tuple[str, ...]


class Blocked(Exception):
    """A key must wait ``retry_after`` seconds (a whole number, at least 1)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


class Backoff:
    """Backoff for keys named ``"<kind>:<value>"``; ``free`` gives each kind's free failures."""

    def __init__(
        self,
        free: dict[str, int],
        *,
        base_seconds: float = 1.0,
        max_seconds: float = 900.0,
        forget_seconds: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.free = free
        self.base = base_seconds
        self.max = max_seconds
        self.forget = forget_seconds
        self.clock = clock
        self.max_keys = max_keys
        self._keys: dict[str, _Key] = {}
        self._lock = threading.Lock()

    def begin(self, *keys: str) -> Attempt:
        """Start an attempt, counted as failed until :meth:`succeeded` says otherwise.

        Raises:
            Blocked: one of the keys must wait; nothing was counted.
        """
        now = self.clock()
        with self._lock:
            states = [self._state(key, now) for key in keys]
            wait = max((s.blocked_until - now for s in states), default=0.0)
            if wait > 0:
                raise Blocked(max(1, math.ceil(wait)))
            for key, state in zip(keys, states, strict=True):
                self._fail(key, state, now)
        return Attempt(keys)

    def succeeded(self, attempt: Attempt, *, reset: tuple[str, ...] = ()) -> None:
        """Give back the attempt's failure; keys in ``reset`` are forgotten altogether."""
        with self._lock:
            for key in attempt.keys:
                state = self._keys.get(key)
                if state is None:
                    continue
                if key in reset:
                    del self._keys[key]
                    continue
                state.failures = max(0, state.failures - 1)
                if state.failures <= self.free[key.partition(":")[0]]:
                    state.blocked_until = 0.0

    def _state(self, key: str, now: float) -> _Key:
        state = self._keys.get(key)
        if state is not None and now - state.last > self.forget and now >= state.blocked_until:
            del self._keys[key]
            state = None
        if state is None:
            if len(self._keys) >= self.max_keys:
                self._sweep(now)
            state = self._keys[key] = _Key(last=now)
        return state

    def _fail(self, key: str, state: _Key, now: float) -> None:
        state.failures += 1
        state.last = now
        over = state.failures - self.free[key.partition(":")[0]]
        if over > 0:
            state.blocked_until = now + min(self.max, self.base * 2 ** min(over - 1, 30))

    def _sweep(self, now: float) -> None:
        # Bounded memory: forget what is quiet, and if a flood of new keys leaves nothing
        # quiet, forget everything rather than grow.
        quiet = [k for k, s in self._keys.items() if now >= s.blocked_until]
        for key in quiet:
            del self._keys[key]
        if len(self._keys) >= self.max_keys:
            self._keys.clear()


def client_address(scope_client: tuple[str, int] | None) -> str:
    """The caller's address as the server sees it.

    ``X-Forwarded-For`` has already been applied by uvicorn, and only from the proxies in
    ``CAMPSYNC_TRUSTED_PROXIES`` (``api.server``): a caller cannot choose its own key.
    """
    return scope_client[0] if scope_client else "-"


def too_many(blocked: Blocked, message: str) -> DomainError:
    """The 429 for a key that must wait, with when to come back."""
    return DomainError(
        message,
        {"retry_after_seconds": blocked.retry_after},
        code=ErrorCode.RATE_LIMITED,
        headers={"Retry-After": str(blocked.retry_after)},
    )
