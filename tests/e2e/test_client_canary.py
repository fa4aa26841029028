"""Canary personal data: nowhere in clear in tablet files, exported batches, or any log."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from campsync_client import _crypto
from sqlalchemy import Engine

from tests.e2e.clientkit import CHEAP_KDF, PIN, Admin
from tests.server import LiveServer

CANARIES = {
    "given_name": "Zanzibarqx",
    "family_name": "Quetzalwyn",
    "father_name": "Xylophanes",
    "given_name_local": "زنزيبارقس",
    "document_number": "CNRY7731X",
}
PHONE = "+93799123457"
NEEDLES = [*CANARIES.values(), PHONE.lstrip("+"), "Zanzibar", "Quetzal", "Xylophan"]


def _leaks(blob: bytes) -> list[str]:
    found = []
    for text in NEEDLES:
        forms = {text, text.lower(), text.upper()}
        if any(form.encode(enc) in blob for form in forms for enc in ("utf-8", "utf-16-le")):
            found.append(text)
    return found


def _store_files(path: Path) -> list[Path]:
    return sorted(p for p in path.parent.iterdir() if p.name.startswith(path.name))


@pytest.fixture
def live(
    db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[LiveServer, Admin]]:
    monkeypatch.setattr(_crypto, "DEFAULT_KDF", CHEAP_KDF)
    data = tmp_path / "server-data"
    data.mkdir()
    server = LiveServer(
        db.url.render_as_string(hide_password=False), data, env={"CAMPSYNC_LOG_LEVEL": "DEBUG"}
    )
    server.start()
    admin = Admin(server.url, db)
    try:
        yield server, admin
    finally:
        admin.close()
        server.stop()


def test_canaries_appear_nowhere_in_clear(
    live: tuple[LiveServer, Admin], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server, admin = live
    caplog.set_level(logging.DEBUG)
    camp = admin.camp()
    a_path, b_path = tmp_path / "a" / "tablet.db", tmp_path / "b" / "tablet.db"
    a = admin.tablet(camp, a_path)
    household = a.register_household(
        CANARIES, [{"given_name": "Zanzibarqy", "father_name": "Xylophanes"}], phone=PHONE
    )
    a.record_service(household.id, "food_ration")
    a.sync()
    a.update_person(household.head_person_id, family_name="Quetzalwyn-Ali")
    exported = a.export_batches(tmp_path / "usb")
    b = admin.tablet(camp, b_path)
    assert b.sync().pulled >= 3  # the canaries now sit in b's store too (pulled state)
    assert b.search("Zanzibarqx")[0].id == household.head_person_id
    # Another process reads while the tablets are open: the WAL and shared memory are on disk.
    readers = [sqlite3.connect(p) for p in (a_path, b_path)]
    for reader in readers:
        reader.execute("SELECT count(*) FROM record").fetchone()
    assert Path(f"{a_path}-wal").exists()
    files = [*_store_files(a_path), *_store_files(b_path), *exported]
    for file in files:
        assert _leaks(file.read_bytes()) == [], file
    a.close()
    b.close()
    env = {**os.environ, "CAMPSYNC_TABLET_STORE": str(a_path), "CAMPSYNC_TABLET_PIN": PIN}
    cli = [sys.executable, "-c", "from campsync_client._cli import main; main()"]
    outputs = []
    for command in (["sync"], ["status"], ["export-batches", str(tmp_path / "usb2")]):
        done = subprocess.run(
            [*cli, *command], env=env, capture_output=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout + done.stderr)
    for reader in readers:
        reader.close()
    for file in [*_store_files(a_path), *_store_files(b_path), *(tmp_path / "usb2").iterdir()]:
        assert _leaks(file.read_bytes()) == [], file
    assert _leaks(b"".join(outputs)) == []
    # The detector works: the worker's own screen does show the names, by design.
    listing = subprocess.run([*cli, "list"], env=env, capture_output=True, timeout=120, check=False)
    assert "Zanzibarqx" in _leaks(listing.stdout)
    assert _leaks(caplog.text.encode()) == []
    server.stop()
    assert "/v1/sync/batches" in server.log()
    assert _leaks(server.log().encode()) == []
