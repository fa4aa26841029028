"""Lost acknowledgements, server restarts, USB sneakernet and kills, against a live server."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from campsync_client import Tablet, TransportError, _crypto
from sqlalchemy import Engine, func, select, update
from sqlmodel import Session

from api.devices.models import Device
from api.registry.models import ChangeLog, Person
from api.sync.models import Batch, ServerKey
from tests.api.test_cli import run
from tests.client.faults import Faulty
from tests.e2e.clientkit import CHEAP_KDF, PIN, RETRY, Admin, server_state, tablet_state
from tests.server import LiveServer


@pytest.fixture
def live(
    db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[LiveServer, Admin, Path]]:
    monkeypatch.setattr(_crypto, "DEFAULT_KDF", CHEAP_KDF)
    data = tmp_path / "server-data"
    data.mkdir()
    server = LiveServer(db.url.render_as_string(hide_password=False), data)
    server.start()
    admin = Admin(server.url, db)
    try:
        yield server, admin, data
    finally:
        admin.close()
        server.stop()


def _applied_once(db: Engine, camp: str) -> None:
    with Session(db) as session:
        total, distinct = session.execute(
            select(func.count(ChangeLog.op_id), func.count(ChangeLog.op_id.distinct())).where(
                ChangeLog.camp_id == camp
            )
        ).one()
    assert total == distinct


def test_batch_resent_after_lost_ack_and_restart_creates_no_duplicate(
    live: tuple[LiveServer, Admin, Path], db: Engine, tmp_path: Path
) -> None:
    server, admin, _ = live
    camp = admin.camp()
    faulty = Faulty(httpx.HTTPTransport())
    tablet = admin.tablet(camp, tmp_path / "t.db", transport=faulty)
    for i in range(3):
        tablet.register_household({"given_name": f"Head{i}"}, [{"given_name": "Kid"}])
    faulty.add("PUT", "drop_response", times=5)  # committed on the server, every answer lost
    with pytest.raises(TransportError):
        tablet.sync()
    server.stop()
    server.start()  # same port, same database
    report = tablet.sync()
    assert (report.pushed, report.applied) == (9, 9)
    with Session(db) as session:
        persons = session.execute(
            select(func.count()).select_from(Person).where(Person.camp_id == camp)
        ).scalar_one()
        batches = session.execute(
            select(func.count()).select_from(Batch).where(Batch.device_id == tablet.device_id)
        ).scalar_one()
    assert (persons, batches) == (6, 1)
    _applied_once(db, camp)
    assert tablet_state(tablet) == server_state(db, camp)


def test_enrolment_whose_answer_was_lost_is_answered_again(
    live: tuple[LiveServer, Admin, Path], db: Engine, tmp_path: Path
) -> None:
    _, admin, _ = live
    camp = admin.camp()
    faulty = Faulty(httpx.HTTPTransport())
    faulty.add("POST /v1/devices/enroll", "drop_response")  # enrolled, the answer lost
    tablet = admin.tablet(camp, tmp_path / "t.db", transport=faulty)
    assert faulty.seen.count("POST /v1/devices/enroll") == 2
    with Session(db) as session:
        devices = session.execute(select(Device.id).where(Device.camp_id == camp)).all()
    assert [d for (d,) in devices] == [tablet.device_id]
    tablet.register_household({"given_name": "Head"}, [{"given_name": "Kid"}])
    report = tablet.sync()
    assert (report.pushed, report.applied) == (3, 3)  # the household, its head, the child


def test_usb_batches_imported_by_an_admin_then_synced_apply_once(
    live: tuple[LiveServer, Admin, Path], db: Engine, tmp_path: Path
) -> None:
    _, admin, data = live
    camp = admin.camp()
    tablet = admin.tablet(camp, tmp_path / "t.db")
    for i in range(4):
        tablet.register_household({"given_name": f"Head{i}"})
    files = tablet.export_batches(tmp_path / "usb")
    assert [f.name for f in files] == [f"{f.stem}.batch" for f in files]
    imported = run(
        data,
        db.url.render_as_string(hide_password=False),
        "admin",
        "import-batches",
        str(tmp_path / "usb"),
    )
    assert imported.returncode == 0, imported.stderr + imported.stdout
    assert server_state(db, camp)  # the households are on the server already
    report = tablet.sync()  # the same batches again, same bytes: recognised
    assert report.pushed == 8  # 4 households and their heads
    assert report.rejected == 0
    _applied_once(db, camp)
    assert tablet_state(tablet) == server_state(db, camp)
    assert tablet.pending() == 0


SYNC = [sys.executable, "-c", "from campsync_client._cli import main; main()", "sync"]


@pytest.mark.timeout(300)
def test_cli_sync_killed_at_random_points_resumes(
    live: tuple[LiveServer, Admin, Path], db: Engine, tmp_path: Path
) -> None:
    _, admin, _ = live
    camp = admin.camp()
    path = tmp_path / "t.db"
    tablet = admin.tablet(camp, path)
    for i in range(400):
        tablet.register_household(
            {"given_name": f"Head{i}"}, [{"given_name": "Kid"}], needs={"food"}
        )
        if i % 50 == 0:
            tablet.record_service(tablet.households()[0].id, "tent")
    expected = tablet.pending()
    tablet.close()
    env = {**os.environ, "CAMPSYNC_TABLET_STORE": str(path), "CAMPSYNC_TABLET_PIN": PIN}
    kills = 0
    for attempt in range(20):
        child = subprocess.Popen(
            SYNC, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(0.3 + 0.1 * attempt)
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            kills += 1
        child.wait()
    final = subprocess.run(SYNC, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert final.returncode == 0, final.stderr
    assert kills >= 2
    with Tablet.open(path, PIN, retry=RETRY) as again:
        assert again.pending() == 0
        assert tablet_state(again) == server_state(db, camp)
    _applied_once(db, camp)
    with Session(db) as session:
        ops = session.execute(
            select(func.count(ChangeLog.op_id)).where(ChangeLog.camp_id == camp)
        ).scalar_one()
    assert ops == expected


def test_batch_sealed_to_a_destroyed_key_is_resealed_same_id_and_seq(
    live: tuple[LiveServer, Admin, Path], db: Engine, tmp_path: Path
) -> None:
    server, admin, data = live
    camp = admin.camp()
    tablet = admin.tablet(camp, tmp_path / "t.db")
    tablet.register_household({"given_name": "Sealed"}, [{"given_name": "Long"}])
    (exported,) = tablet.export_batches(tmp_path / "usb")  # sealed to today's key, offline
    url = db.url.render_as_string(hide_password=False)
    assert run(data, url, "admin", "rotate-keys").returncode == 0
    with Session(db) as session:  # the grace period is over for the retired key
        session.execute(
            update(ServerKey)
            .where(ServerKey.status == "retired")
            .values(destroy_after=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
        )
        session.commit()
    assert run(data, url, "admin", "rotate-keys").returncode == 0  # destroys it
    server.stop()
    server.start()
    report = tablet.sync()
    assert (report.pushed, report.applied, report.batches) == (3, 3, 1)
    with Session(db) as session:
        stored = session.execute(
            select(Batch).where(Batch.id == uuid.UUID(exported.stem))
        ).scalar_one()
    assert stored.seq == 1  # the same batch id and seq, sealed to a current key
    assert '"status": 410' in server.log()  # the first answer was key_destroyed
    assert tablet_state(tablet) == server_state(db, camp)
