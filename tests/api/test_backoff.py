"""The backoff behind logins, device tokens and enrolment: free failures, then doubling waits."""

from __future__ import annotations

import threading

import pytest

from api.ratelimit import Backoff, Blocked


def _backoff(now: list[float], free: int = 3) -> Backoff:
    return Backoff(
        {"k": free}, base_seconds=1, max_seconds=60, forget_seconds=600, clock=lambda: now[0]
    )


def test_free_failures_then_each_wait_doubles_up_to_the_ceiling() -> None:
    now = [0.0]
    backoff = _backoff(now)
    for _ in range(4):  # three free, the fourth starts the backoff
        backoff.begin("k:a")
    waits = []
    for _ in range(8):
        with pytest.raises(Blocked) as blocked:
            backoff.begin("k:a")
        waits.append(blocked.value.retry_after)
        now[0] += blocked.value.retry_after
        backoff.begin("k:a")  # allowed again: it fails too
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60]


def test_a_refused_attempt_counts_nothing_and_other_keys_are_free() -> None:
    now = [0.0]
    backoff = _backoff(now)
    for _ in range(4):
        backoff.begin("k:a")
    for _ in range(50):
        with pytest.raises(Blocked):
            backoff.begin("k:a")
    backoff.begin("k:b")
    now[0] = 1.0
    backoff.begin("k:a")  # the wait stayed one second: the 50 refusals did not extend it


def test_success_gives_back_its_failure_and_reset_forgets_the_key() -> None:
    now = [0.0]
    backoff = _backoff(now, free=1)
    backoff.succeeded(backoff.begin("k:a"))
    backoff.succeeded(backoff.begin("k:a"))
    backoff.begin("k:a")
    attempt = backoff.begin("k:a")  # second failure: the key now waits
    with pytest.raises(Blocked):
        backoff.begin("k:a")
    backoff.succeeded(attempt, reset=("k:a",))
    backoff.begin("k:a")


def test_quiet_keys_are_forgotten() -> None:
    now = [0.0]
    backoff = _backoff(now)
    for _ in range(4):
        backoff.begin("k:a")
    now[0] = 700.0
    for _ in range(4):
        backoff.begin("k:a")  # free failures again


def test_simultaneous_attempts_cannot_all_pass_the_check() -> None:
    backoff = Backoff({"k": 10})
    barrier = threading.Barrier(100)
    passed = []

    def attempt() -> None:
        barrier.wait()
        try:
            backoff.begin("k:a")
        except Blocked:
            return
        passed.append(1)

    threads = [threading.Thread(target=attempt) for _ in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(passed) == 11  # ten free, and the one that started the backoff


def test_memory_stays_bounded_under_a_flood_of_new_keys() -> None:
    backoff = Backoff({"k": 1}, max_keys=1000)
    for n in range(10_000):
        backoff.begin(f"k:{n}")
    assert len(backoff._keys) <= 1000
