"""L2, a reconnect storm: many tablets come back online at once and push their backlog."""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import httpx
from campsync_sync import uuid7
from sqlalchemy import Engine

from tests.factories import make_camp, make_user
from tests.server import LiveServer
from tests.synccheck import table_counts
from tests.synckit import Tablet

TABLETS = int(os.environ.get("CAMPSYNC_STORM_TABLETS", "100"))
RECORDS = 170


def _rss_mb(pid: int) -> float:
    total, pids = 0, [pid]
    while pids:
        current = pids.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(
                next(ln for ln in status.splitlines() if ln.startswith("VmRSS")).split()[1]
            )
            for task in Path(f"/proc/{current}/task").iterdir():
                pids += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration):
            continue
    return total / 1024


def test_a_reconnect_storm_is_absorbed_without_loss(db: Engine, tmp_path: Path) -> None:
    server = LiveServer(db.url.render_as_string(hide_password=False), tmp_path, workers=2)
    server.start()
    try:
        camp = make_camp(db)
        admin = {"Authorization": f"Bearer {make_user(db, 'admin')}"}
        http = httpx.Client(
            base_url=server.url, timeout=60, limits=httpx.Limits(max_connections=200)
        )
        tablets, batches = [], []
        for _ in range(TABLETS):
            code = http.post(f"/v1/camps/{camp}/enrollment-codes", headers=admin).json()["code"]
            tablet = Tablet(http)
            tablet.enroll(code)
            hid = uuid7()
            ops = [tablet.household(hid)] + [tablet.person(hid) for _ in range(RECORDS - 1)]
            tablets.append(tablet)
            batches.append(tablet.seal_batch(ops))
        rng = random.Random(3)
        latencies: list[float] = []
        statuses: list[int] = []
        lock = threading.Lock()
        peak = [0.0]

        def push(tablet: Tablet, sealed: tuple, delay: float) -> None:  # type: ignore[type-arg]
            time.sleep(delay)
            while True:
                started = time.perf_counter()
                response = tablet.put(*sealed)
                with lock:
                    latencies.append(time.perf_counter() - started)
                    statuses.append(response.status_code)
                if response.status_code != 503:
                    assert response.status_code == 200, response.text
                    tablet.receipt(response.content)
                    return
                time.sleep(float(response.headers["retry-after"]) * rng.random())

        threads = [
            threading.Thread(target=push, args=(t, b, rng.uniform(0, 3)))
            for t, b in zip(tablets, batches, strict=True)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            assert server.process is not None
            peak[0] = max(peak[0], _rss_mb(server.process.pid))
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        http.close()
    finally:
        server.stop()
    counts = table_counts(db)
    assert counts["batch"] == TABLETS
    assert counts["person"] + counts["household"] == TABLETS * RECORDS
    assert set(statuses) <= {200, 503}
    assert statuses.count(503) <= 0.05 * len(statuses)
    assert elapsed < 600
    assert peak[0] < 1024
    ordered = sorted(latencies)
    p99 = ordered[int(0.99 * (len(ordered) - 1))]
    print(
        f"storm: {TABLETS} tablets in {elapsed:.1f} s, p99 {p99 * 1000:.0f} ms, "
        f"503s {statuses.count(503)}, RSS peak {peak[0]:.0f} MB"
    )
