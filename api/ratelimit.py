"""A small sliding-window counter of failures, per key, in this process.

It bounds password guessing (OWASP API2): after N failures for one username or one client
address within the window, logins answer 429 with Retry-After. Counts live in memory, so with
several workers the effective limit is N per worker; that still bounds guessing to a handful of
attempts per minute.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class FailureLimiter:
    def __init__(
        self, limit: int, window_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window_seconds
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, *keys: str) -> int | None:
        """Seconds until a blocked key may try again, or None when none is blocked."""
        now = self.clock()
        waits = []
        with self._lock:
            for key in keys:
                stamps = self._recent(key, now)
                if len(stamps) >= self.limit:
                    waits.append(stamps[0] + self.window - now)
        return max(1, int(max(waits)) + 1) if waits else None

    def fail(self, *keys: str) -> None:
        now = self.clock()
        with self._lock:
            for key in keys:
                self._failures[key] = self._recent(key, now)
                self._failures[key].append(now)

    def reset(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float]:
        stamps = self._failures.pop(key, deque())
        while stamps and stamps[0] <= now - self.window:
            stamps.popleft()
        if stamps:  # keys whose failures have all expired are forgotten
            self._failures[key] = stamps
        return stamps
