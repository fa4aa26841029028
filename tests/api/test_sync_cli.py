"""The sync administration commands, run as an admin runs them."""

from __future__ import annotations

import json
from pathlib import Path

from campsync_sync import EnrollmentInvite, uuid7
from sqlalchemy import Engine, select
from sqlmodel import Session

from api.audit.models import AuditLog
from api.devices.models import Device
from api.registry.models import Household
from tests.api.test_cli import run
from tests.factories import make_camp, make_tablet
from tests.synccheck import table_counts
from tests.synckit import Tablet


def _cli(db: Engine, data_dir: Path, *args: str):  # type: ignore[no-untyped-def]
    return run(data_dir, db.url.render_as_string(hide_password=False), *args)


def test_enrollment_code_prints_the_qr_payload_then_the_code_alone(
    client, db: Engine, data_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    camp = make_camp(db)
    result = _cli(db, data_dir, "admin", "enrollment-code", "--camp", camp, "--ttl", "15")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    code = lines[-1]
    payload = next(line for line in lines if line.startswith("QR payload: "))
    invite = EnrollmentInvite.model_validate_json(payload.removeprefix("QR payload: "))
    assert invite.code == code
    tablet = Tablet(client)
    tablet.enroll(code, fingerprint_pin=invite.server_key_fingerprint)
    missing = _cli(db, data_dir, "admin", "enrollment-code", "--camp", "nowhere")
    assert missing.returncode != 0
    assert missing.stdout == ""
    assert missing.stderr.startswith("error: ")
    assert "Traceback" not in missing.stderr


def test_revoke_device_and_rotate_keys(client, db: Engine, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    tablet = make_tablet(client, db)
    revoked = _cli(db, data_dir, "admin", "revoke-device", str(tablet.device_id))
    assert revoked.returncode == 0, revoked.stderr
    with Session(db) as session:
        assert session.get(Device, tablet.device_id).status == "revoked"  # type: ignore[union-attr]
    assert _cli(db, data_dir, "admin", "revoke-device", "not-a-uuid").returncode != 0
    assert _cli(db, data_dir, "admin", "revoke-device", str(uuid7())).returncode != 0

    rotated = _cli(db, data_dir, "admin", "rotate-keys")
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout.splitlines()[1].startswith("retired: ")
    with Session(db) as session:
        actions = set(session.execute(select(AuditLog.action)).scalars())
    assert {"device.revoke", "keys.rotate"} <= actions


def test_import_batches_applies_in_seq_order_and_refuses_bad_files(
    client, db: Engine, data_dir: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    tablet = make_tablet(client, db)
    folder = tmp_path / "usb"
    folder.mkdir()
    households = [uuid7() for _ in range(3)]
    sealed = [tablet.seal_batch([tablet.household(h)]) for h in households]
    for batch_id, data in reversed(sealed):  # the file order says nothing about seq
        (folder / f"{batch_id}.batch").write_bytes(data)
    tampered_id, tampered = tablet.seal_batch([tablet.household()])
    (folder / f"{tampered_id}.batch").write_bytes(tampered[:-1] + bytes([tampered[-1] ^ 1]))
    (folder / "notes.batch").write_bytes(b"hello")
    before = table_counts(db)

    result = _cli(db, data_dir, "admin", "import-batches", str(folder))
    assert result.returncode != 0
    lines = dict(line.split("\t", 1) for line in result.stdout.splitlines())
    assert len(lines) == 5
    for batch_id, _ in sealed:
        assert lines[f"{batch_id}.batch"].startswith("applied\t")
    assert lines[f"{tampered_id}.batch"].startswith("refused\tbad_signature")
    assert lines["notes.batch"].startswith("refused\t")
    assert "2 of 5 files refused" in result.stderr
    with Session(db) as session:
        stored = set(session.execute(select(Household.id)).scalars())
    assert stored == set(households)
    assert table_counts(db)["batch"] == before["batch"] + 3

    again = _cli(db, data_dir, "admin", "import-batches", str(folder))
    lines = dict(line.split("\t", 1) for line in again.stdout.splitlines())
    assert all(lines[f"{b}.batch"].startswith("already applied") for b, _ in sealed)
    assert table_counts(db)["batch"] == before["batch"] + 3
    # The tablet's receipt for an imported batch is the stored one.
    response = client.get(f"/v1/sync/batches/{sealed[0][0]}", headers=tablet.auth())
    assert tablet.receipt(response.content).seq == 1
    assert json.loads(json.dumps(lines))  # the output is plain text, one line per file
