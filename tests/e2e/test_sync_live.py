"""A real server over loopback: enrol with the CLI's code, push, pull, restart, revoke."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from campsync_sync import EnrollmentInvite, Outcome, uuid7
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from api.registry.models import Household
from tests.api.test_cli import run
from tests.factories import make_camp
from tests.server import LiveServer
from tests.synccheck import table_counts
from tests.synckit import Tablet


def _code(db: Engine, data_dir: Path, camp: str, public_url: str) -> tuple[str, EnrollmentInvite]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CAMPSYNC_PUBLIC_URL", public_url)
        result = run(
            data_dir,
            db.url.render_as_string(hide_password=False),
            "admin",
            "enrollment-code",
            "--camp",
            camp,
        )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    payload = next(line for line in lines if line.startswith("QR payload: "))
    return lines[-1], EnrollmentInvite.model_validate_json(payload.removeprefix("QR payload: "))


def test_a_tablet_syncs_with_a_live_server_across_a_restart(db: Engine, tmp_path: Path) -> None:
    server = LiveServer(db.url.render_as_string(hide_password=False), tmp_path)
    server.start()
    try:
        camp = make_camp(db)
        code, invite = _code(db, tmp_path, camp, server.url)
        assert invite.server_url == server.url
        with httpx.Client(base_url=server.url, timeout=30) as http:
            tablet = Tablet(http)
            tablet.enroll(code, fingerprint_pin=invite.server_key_fingerprint)
            hid = uuid7()
            first = tablet.push([tablet.household(hid), tablet.person(hid, given_name="Canary")])
            assert [r.outcome for r in first.results] == [Outcome.APPLIED] * 2
            batch_id, data = tablet.seal_batch([tablet.service(hid, "tent")])
            assert tablet.put(batch_id, data).status_code == 200
            rows, cursor, _ = tablet.pull_all()
            assert len(rows) == 3
        server.stop()
        before = table_counts(db)
        server.start()
        with httpx.Client(base_url=server.url, timeout=30) as http:
            tablet.http = http
            tablet.token_value = None
            replay = tablet.put(batch_id, data)
            assert replay.status_code == 200
            assert tablet.receipt(replay.content).seq == 2
            assert table_counts(db) == before
            assert tablet.pull(cursor).changes == []
            revoked = run(
                tmp_path,
                db.url.render_as_string(hide_password=False),
                "admin",
                "revoke-device",
                str(tablet.device_id),
            )
            assert revoked.returncode == 0
            refused = tablet.put(*tablet.seal_batch([tablet.household()]))
            assert refused.status_code == 403
            tablet.verify_wipe(refused.json()["error"]["details"])
    finally:
        server.stop()
    log = server.log()
    assert "Canary" not in log
    assert '"route": "/v1/sync/batches/{batch_id}"' in log


def test_several_workers_merge_many_devices_once_each(db: Engine, tmp_path: Path) -> None:
    server = LiveServer(db.url.render_as_string(hide_password=False), tmp_path, workers=2)
    server.start()
    try:
        camp = make_camp(db)
        clients = [httpx.Client(base_url=server.url, timeout=60) for _ in range(4)]
        tablets = []
        for http in clients:
            tablet = Tablet(http)
            tablet.enroll(_code(db, tmp_path, camp, server.url)[0])
            tablets.append(tablet)
        errors: list[BaseException] = []

        def sync(tablet: Tablet) -> None:
            try:
                for _ in range(8):
                    hid = uuid7()
                    ops = [tablet.household(hid)] + [tablet.person(hid) for _ in range(49)]
                    sealed = tablet.seal_batch(ops)
                    # Each batch twice at once: the workers must apply it once.
                    answers: list[httpx.Response] = []
                    twin = threading.Thread(
                        target=lambda answers=answers, sealed=sealed: answers.append(
                            httpx.put(
                                f"{server.url}/v1/sync/batches/{sealed[0]}",
                                content=sealed[1],
                                headers={"content-type": "application/octet-stream"},
                                timeout=60,
                            )
                        )
                    )
                    twin.start()
                    answers.append(tablet.put(*sealed))
                    twin.join()
                    codes = sorted(a.status_code for a in answers)
                    assert codes in ([200, 200], [200, 409]), [a.text for a in answers]
                    if answers[-1].status_code != 200:
                        retry = tablet.put(*sealed)
                        assert retry.status_code == 200
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=sync, args=(t,)) for t in tablets]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[:2]
        counts = table_counts(db)
        assert counts["batch"] == 32
        assert counts["person"] == 32 * 49
        with Session(db) as session:
            assert session.execute(select(func.count()).select_from(Household)).scalar_one() == 32
        rows, _, _ = tablets[0].pull_all(limit=500)
        assert len(rows) == 32 * 50
        for http in clients:
            http.close()
    finally:
        server.stop()


def test_a_body_that_trickles_in_is_cut_off_with_retry_after(db: Engine, tmp_path: Path) -> None:
    import socket

    server = LiveServer(
        db.url.render_as_string(hide_password=False),
        tmp_path,
        env={"CAMPSYNC_BODY_TIMEOUT_SECONDS": "1"},
    )
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(
                f"PUT /v1/sync/batches/{uuid7()} HTTP/1.1\r\nHost: x\r\n"
                "Content-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n".encode()
                + b"CSYN"
            )
            started = time.monotonic()
            answer = sock.recv(4096).decode()
            waited = time.monotonic() - started
            head, _, body = answer.partition("\r\n\r\n")
            length = int(head.lower().split("content-length: ")[1].split("\r\n")[0])
            while len(body.encode()) < length:
                body += sock.recv(4096).decode()
            answer = head + "\r\n\r\n" + body
        assert answer.startswith("HTTP/1.1 503"), answer
        assert "retry-after: 2" in answer.lower()
        assert '"request_timeout"' in answer
        assert 0.8 < waited < 5
    finally:
        server.stop()
