"""Canary personal data never appears in clear in the tablet's files, batches or logs."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from campsync_client import Tablet

from tests.client.conftest import PIN, TabletFactory

CANARIES = {
    "given_name": "Zanzibarqx",
    "family_name": "Quetzalwyn",
    "father_name": "Xylophanes",
    "given_name_local": "زنزيبارقس",
    "document_number": "CANARY7731X",
}
PHONE = "+93799123457"


def _files(path: Path) -> list[Path]:
    return [p for p in path.parent.iterdir() if p.name.startswith(path.name)]


def _leaks(blob: bytes) -> list[str]:
    texts = [*CANARIES.values(), PHONE.lstrip("+"), "Zanzibar", "Quetzal"]
    found = []
    for text in texts:
        for encoded in (
            text.encode(),
            text.encode("utf-16-le"),
            text.upper().encode(),
            text.lower().encode(),
        ):
            if encoded in blob:
                found.append(text)
    return found


def test_canaries_never_in_clear(
    make_tablet: TabletFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tablet = make_tablet("canary")
    path = tablet._r.store.path
    household = tablet.register_household(
        CANARIES, [{"given_name": "Zanzibarqy"}], phone=PHONE, needs={"food"}
    )
    tablet.record_service(household.id, "tent")
    files = tablet.export_batches(tmp_path / "usb")
    # Open a second connection as another process would: WAL and shared memory stay on disk.
    reader = sqlite3.connect(path)
    reader.execute("SELECT count(*) FROM record").fetchone()
    assert Path(f"{path}-wal").exists()
    for file in [*_files(path), *files]:
        assert _leaks(file.read_bytes()) == [], file.name
    tablet.sync()
    assert tablet.search("Zanzibarqx")[0].id == household.head_person_id
    for file in _files(path):
        assert _leaks(file.read_bytes()) == [], file.name
    tablet.close()
    reader.close()
    with Tablet.open(path, PIN) as again:
        again.update_person(household.head_person_id, family_name="Quetzalwyn Jr")
    for file in _files(path):
        assert _leaks(file.read_bytes()) == [], file.name
    assert _leaks(caplog.text.encode()) == []
