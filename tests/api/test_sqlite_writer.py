"""The SQLite write turn: threads and processes (``serve --workers N``) write one at a time."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from api.db import SQLiteWriter

HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _hold(path: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process holding the database's writer lock for a while."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, f"{path}.writer", str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_writer_waits_for_another_process_then_gets_its_turn(tmp_path: Path) -> None:
    database = tmp_path / "campsync.db"
    with _hold(database, 0.5):
        started = time.monotonic()
        with SQLiteWriter(str(database)):
            waited = time.monotonic() - started
    assert waited >= 0.3
    assert (tmp_path / "campsync.db.writer").stat().st_mode & 0o777 == 0o600


def test_a_writer_that_waits_too_long_is_told_the_database_is_locked(tmp_path: Path) -> None:
    database = tmp_path / "campsync.db"
    writer = SQLiteWriter(str(database), patience=0.2)
    with _hold(database, 5) as holder:
        with pytest.raises(OperationalError, match="database is locked"):
            with writer:
                pass
        holder.kill()
    # The failed wait left nothing held: the turn is free once the other process is gone.
    with writer:
        pass


def test_threads_of_one_process_write_one_at_a_time(tmp_path: Path) -> None:
    writer = SQLiteWriter(str(tmp_path / "campsync.db"))
    inside, most = 0, 0
    lock = threading.Lock()

    def write() -> None:
        nonlocal inside, most
        for _ in range(50):
            with writer:
                with lock:
                    inside += 1
                    most = max(most, inside)
                time.sleep(0.0005)
                with lock:
                    inside -= 1

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_share_its_parents_turn(tmp_path: Path) -> None:
    writer = SQLiteWriter(str(tmp_path / "campsync.db"), patience=0.2)
    with writer:  # the parent has opened its lock file before forking
        pass
    ready, go = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.read(ready, 1)
        # flock locks belong to the open file: had the child kept its parent's, this would
        # succeed while the parent writes.
        try:
            with writer:
                os._exit(1)
        except OperationalError:
            os._exit(0)
    with writer:
        os.write(go, b"x")
        _, status = os.waitpid(pid, 0)
    os.close(ready)
    os.close(go)
    assert os.waitstatus_to_exitcode(status) == 0


def test_an_in_memory_database_needs_no_file(tmp_path: Path) -> None:
    with SQLiteWriter(":memory:"):
        pass
    with SQLiteWriter(""):
        pass
    assert not list(tmp_path.iterdir())
