"""Kill the client at every step boundary; the next run must lose and duplicate nothing.

A step boundary is every local commit (edit, seal, ack, pull...) and both sides of every
request (before it leaves, after the server handled it but before the answer is read). The
test crashes at boundary 1, then 2, and so on until a run gets through, reopening the store
from disk each time as a restarted app would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from campsync_client import Tablet, _outbox

from tests.client.conftest import FAST_RETRY, PIN
from tests.client.fakeserver import FakeServer
from tests.client.faults import Crash
from tests.client.test_sync import server_snapshot, snapshot


class Boundaries(httpx.BaseTransport):
    """Counts step boundaries and crashes at the chosen one."""

    def __init__(self, inner: httpx.BaseTransport, crash_at: int) -> None:
        self.inner = inner
        self.crash_at = crash_at
        self.count = 0

    def step(self, _label: object = None) -> None:
        self.count += 1
        if self.count == self.crash_at:
            raise Crash

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.step()
        response = self.inner.handle_request(request)
        self.step()
        return response


def _work(tablet: Tablet) -> None:
    households = [
        tablet.register_household(
            {"given_name": f"Head{i}"}, [{"given_name": "Kid"}], needs={"food"}
        )
        for i in range(3)
    ]
    tablet.record_service(households[0].id, "tent")
    tablet.update_household(households[1].id, shelter_status="tent_assigned")


def test_crash_at_every_step_boundary(
    server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_outbox, "MAX_BATCH_OPS", 3)  # several batches, several seals and acks
    crash_at = 1
    while True:
        server = FakeServer()
        path = tmp_path / f"crash-{crash_at}.db"
        tablet = Tablet.enroll(
            server.url, server.code(), path, PIN, transport=server.transport(), retry=FAST_RETRY
        )
        _work(tablet)
        expected_ops = tablet.pending()
        tablet.close()
        boundaries = Boundaries(server.transport(), crash_at)
        tablet = Tablet.open(path, PIN, transport=boundaries, retry=FAST_RETRY)
        tablet._r.store.after_commit = boundaries.step
        try:
            tablet.sync()
        except Crash:
            crashed = True
        else:
            crashed = False
        tablet._r.store.conn.close()  # the process is gone; nothing more is written
        again = Tablet.open(path, PIN, transport=server.transport(), retry=FAST_RETRY)
        again.sync()
        assert again.pending() == 0, crash_at
        assert server.applied_ops == expected_ops, crash_at  # nothing lost, nothing twice
        assert snapshot(again) == server_snapshot(server), crash_at
        assert len(again.services()) == 1
        again.close()
        if not crashed:
            break
        crash_at += 1
    assert crash_at > 20  # the scenario really has that many boundaries


SYNC_SCRIPT = """
import sys
from campsync_client import Tablet
with Tablet.open(sys.argv[1], sys.argv[2], server_url=sys.argv[3]) as tablet:
    tablet.sync()
"""


@pytest.mark.timeout(240)
def test_sigkill_during_sync(
    http_fake: tuple[FakeServer, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, url = http_fake
    path = tmp_path / "t.db"
    tablet = Tablet.enroll(url, server.code(), path, PIN)
    for i in range(120):
        tablet.register_household(
            {"given_name": f"Head{i}"}, [{"given_name": "Kid"}], needs={"food"}
        )
    expected = tablet.pending()
    tablet.close()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    kills = 0
    for attempt in range(30):
        child = subprocess.Popen([sys.executable, "-c", SYNC_SCRIPT, str(path), PIN, url], env=env)
        time.sleep(0.05 + 0.02 * attempt)
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            kills += 1
        child.wait()
    with Tablet.open(path, PIN, server_url=url) as again:
        again.sync()
        assert again.pending() == 0
        assert server.applied_ops == expected
        assert snapshot(again) == server_snapshot(server)
    assert kills >= 3
