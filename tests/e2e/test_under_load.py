"""The real server under load and abuse (issue 14), over loopback, bounded in count and time.

Each test reproduces what a probe saw: a crowd of coordinators (500s after 30 s), huge
headers, a flood that locked a tablet or a user out, slow clients that held every push slot.
The server runs with short timeouts so that the tests stay fast; the defaults are longer.
"""

from __future__ import annotations

import asyncio
import math
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from campsync_client import _crypto
from sqlalchemy import Engine
from sqlmodel import Session

from api.users import service as user_service
from tests.e2e.clientkit import CHEAP_KDF, Admin
from tests.factories import bearer, make_camp, make_user
from tests.server import LiveServer

SHORT = {
    "CAMPSYNC_HEADER_TIMEOUT_SECONDS": "1",
    "CAMPSYNC_BODY_TIMEOUT_SECONDS": "1",
    "CAMPSYNC_QUEUE_WAIT_SECONDS": "1",
}
PASSWORD = "correct horse battery staple"


@pytest.fixture
def live(
    db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[LiveServer, Admin]]:
    monkeypatch.setattr(_crypto, "DEFAULT_KDF", CHEAP_KDF)
    data = tmp_path / "server-data"
    data.mkdir()
    server = LiveServer(db.url.render_as_string(hide_password=False), data, env=SHORT)
    server.start()
    admin = Admin(server.url, db)
    try:
        yield server, admin
    finally:
        admin.close()
        server.stop()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class HealthProbe:
    """``GET /healthz`` every 20 ms on a connection of its own, while something else runs."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=5) as http:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    ok = http.get("/healthz").status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.latencies.append(time.perf_counter() - started)
                self.failures += not ok
                self._stop.wait(0.02)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)


async def _crowd(url: str, token: str, paths: list[str]) -> list[tuple[int, float, str | None]]:
    limits = httpx.Limits(max_connections=len(paths), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:

        async def one(path: str) -> tuple[int, float, str | None]:
            started = time.perf_counter()
            response = await http.get(path, headers=bearer(token))
            return (
                response.status_code,
                time.perf_counter() - started,
                response.headers.get("retry-after"),
            )

        return await asyncio.gather(*(one(p) for p in paths))


def test_a_crowd_of_coordinators_gets_answers_or_quick_503s(
    live: tuple[LiveServer, Admin], db: Engine
) -> None:
    server, admin = live
    camp = admin.camp()
    token = make_user(db, "integrator", [camp])
    paths = [f"/v1/camps/{camp}" if n % 2 else f"/v1/households?camp={camp}" for n in range(200)]
    assert server.process is not None
    rss_before = _rss_mb(server.process.pid)
    with HealthProbe(server.url) as probe:
        answers = asyncio.run(_crowd(server.url, token, paths))
        answers += asyncio.run(_crowd(server.url, token, paths))
    rss_after = _rss_mb(server.process.pid)
    statuses = [status for status, _, _ in answers]
    slowest = max(seconds for _, seconds, _ in answers)
    health = sorted(probe.latencies)
    print(
        f"crowd: {len(answers)} requests, {statuses.count(200)} x 200, "
        f"{statuses.count(503)} x 503, slowest {slowest * 1000:.0f} ms; /healthz "
        f"{len(health)} probes, p50 {statistics.median(health) * 1000:.1f} ms, "
        f"max {health[-1] * 1000:.1f} ms; RSS {rss_before:.0f} -> {rss_after:.0f} MB"
    )
    assert set(statuses) <= {200, 503}
    assert statuses.count(200) >= 40  # how many depends on the machine; none failed
    assert all(retry == "2" for status, _, retry in answers if status == 503)
    assert slowest < 10  # the queue waits a second at most; before: 500s after 30 s
    assert len(health) >= 5
    assert probe.failures == 0
    # The goal, 100 ms throughout, is measured by bench/load.py; here the suite's other
    # tests share the two cores, so the bound is looser (before: 30 s, and no answer at all).
    assert statistics.median(health) < 0.1
    assert health[-1] < 1.5
    assert rss_after - rss_before < 100


def _raw(url: str, request: bytes, *, wait: float = 5) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        try:
            sock.sendall(request)
        except OSError:
            pass  # the server may close before it has read everything: that is the point
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


def test_huge_headers_many_headers_and_long_lines_are_refused(
    live: tuple[LiveServer, Admin],
) -> None:
    server, _ = live
    big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1_048_576 + b"\r\n\r\n"
    many = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 10_000 + b"\r\n"
    long_line = b"GET /healthz?" + b"q" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    for request in (big, many, long_line):
        answer = _raw(server.url, request)
        assert answer.startswith(b"HTTP/1.1 431"), answer[:80]
    ok = _raw(server.url, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200")


def test_unfinished_headers_and_bodies_are_cut_off(live: tuple[LiveServer, Admin]) -> None:
    server, _ = live
    host, port = server.url.removeprefix("http://").split(":")
    started = time.monotonic()
    sockets = []
    for n in range(50):
        sock = socket.create_connection((host, int(port)), timeout=10)
        # Half of them never finish their headers, half never finish their body.
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
            if n % 2
            else b"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            b"\r\nContent-Length: 1000\r\n\r\n{"
        )
        sockets.append(sock)
    closed_after = []
    for sock in sockets:
        with sock:
            try:
                while sock.recv(65536):
                    pass
            except (TimeoutError, ConnectionResetError):
                pass
            closed_after.append(time.monotonic() - started)
    print(f"50 slow connections closed after at most {max(closed_after):.1f} s")
    assert max(closed_after) < 8  # header timeout 1 s, body timeout 1 s and a second's grace


def _answer(sock: socket.socket) -> bytes:
    """One whole answer to a request on a kept connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_a_kept_connection_idles_until_keep_alive_but_its_next_headers_are_timed(
    live: tuple[LiveServer, Admin],
) -> None:
    server, _ = live
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        assert _answer(sock).startswith(b"HTTP/1.1 200")
        time.sleep(1.5)  # past the header timeout (1 s), within keep-alive (5 s)
        sock.sendall(request)
        assert _answer(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # the next request never finishes
        started = time.monotonic()
        assert sock.recv(65536) == b""
        assert time.monotonic() - started < 3


def test_healthz_is_answered_before_the_crowd_and_keeps_its_connection(
    live: tuple[LiveServer, Admin],
) -> None:
    server, _ = live
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        for _ in range(3):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            head = _answer(sock)
            assert head.startswith(b"HTTP/1.1 200")
            assert b"x-content-type-options: nosniff" in head
            time.sleep(1.2)  # past the header timeout: an idle kept connection stays open
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 200")
        assert sock.recv(65536) == b""
    with httpx.Client(base_url=server.url, timeout=10) as http:
        answer = http.get("/healthz")
    assert answer.json() == {"status": "ok"}
    assert "server" not in answer.headers


def test_slow_pushes_do_not_hold_up_a_real_tablet(
    live: tuple[LiveServer, Admin], tmp_path: Path
) -> None:
    server, admin = live
    camp = admin.camp()
    tablet = admin.tablet(camp, tmp_path / "tablet.db")
    host, port = server.url.removeprefix("http://").split(":")
    slow = []
    for n in range(20):  # more than the eight push slots the probe found taken
        sock = socket.create_connection((host, int(port)), timeout=10)
        sock.sendall(
            f"PUT /v1/sync/batches/00000000-0000-7000-8000-{n:012d} HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\nCSY".encode()
        )
        slow.append(sock)
    time.sleep(0.2)
    try:
        tablet.register_household({"given_name": "Gul", "family_name": "Ahmadi"})
        started = time.perf_counter()
        report = tablet.sync()
        took = time.perf_counter() - started
    finally:
        for sock in slow:
            sock.close()
    print(f"a tablet's sync beside 20 stalled pushes: {took:.2f} s")
    assert report.pushed == 2
    assert took < 5  # before: 29 s


def test_a_flood_of_bad_token_requests_does_not_lock_the_tablet_out(
    live: tuple[LiveServer, Admin], tmp_path: Path
) -> None:
    server, admin = live
    tablet = admin.tablet(admin.camp(), tmp_path / "tablet.db")
    device = str(tablet.device_id)
    statuses = []
    started = time.monotonic()
    with httpx.Client(base_url=server.url, timeout=10) as attacker:
        for _ in range(30):
            challenge = attacker.post("/v1/sync/challenge", json={"device_id": device}).json()
            body = {"device_id": device, "challenge": challenge["challenge"], "signature": "AAAA"}
            statuses.append(attacker.post("/v1/sync/token", json=body).status_code)
    # Ten free failures, one that starts the backoff, then 429s; one more 401 each time a
    # wait of 1, 2, 4... seconds ran out during the flood (a slow machine).
    assert statuses[:12] == [401] * 11 + [429]
    assert statuses.count(401) <= 11 + int(math.log2(time.monotonic() - started + 1))
    tablet.register_household({"given_name": "Gul", "family_name": "Ahmadi"})
    started = time.perf_counter()
    report = tablet.sync()
    assert report.pushed == 2
    assert time.perf_counter() - started < 5  # before: blocked 315 s, then failed


def _user_with_password(db: Engine, username: str) -> None:
    make_user(db, "coordinator", [make_camp(db)], username=username)
    with Session(db) as session:
        user_service.set_password(session=session, username=username, password=PASSWORD)


def _from(address: str, url: str) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=url, transport=transport, timeout=30)


def test_wrong_logins_from_one_address_do_not_lock_the_user_out(
    live: tuple[LiveServer, Admin], db: Engine
) -> None:
    server, _ = live
    _user_with_password(db, "farida")
    wrong = {"username": "farida", "password": "guess-guess-guess"}
    right = {"username": "farida", "password": PASSWORD}
    with _from("127.0.0.2", server.url) as attacker, _from("127.0.0.1", server.url) as farida:
        statuses = [attacker.post("/v1/auth/login", json=wrong).status_code for _ in range(7)]
        assert statuses == [401] * 6 + [429]
        # Each failure after a wait doubles the next one: 1 s, then 2, then 4.
        for expected in (2, 4):
            time.sleep(float(attacker.post("/v1/auth/login", json=wrong).headers["retry-after"]))
            assert attacker.post("/v1/auth/login", json=wrong).status_code == 401
            assert attacker.post("/v1/auth/login", json=wrong).headers["retry-after"] == str(
                expected
            )
        # A forged X-Forwarded-For is not believed (no trusted proxy is configured).
        spoofed = attacker.post(
            "/v1/auth/login", json=right, headers={"X-Forwarded-For": "203.0.113.9"}
        )
        assert spoofed.status_code == 429
        assert farida.post("/v1/auth/login", json=right).status_code == 200


def test_simultaneous_wrong_logins_get_no_more_tries_than_the_limit(
    live: tuple[LiveServer, Admin], db: Engine
) -> None:
    server, _ = live
    _user_with_password(db, "nasrin")

    async def storm() -> list[int]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as http:
            body = {"username": "nasrin", "password": "guess-guess-guess"}
            answers = await asyncio.gather(
                *(http.post("/v1/auth/login", json=body) for _ in range(100))
            )
        return [a.status_code for a in answers]

    started = time.monotonic()
    statuses = asyncio.run(storm())
    elapsed = time.monotonic() - started
    # Five free tries and the one that starts the backoff (before: 40 against a limit of 10);
    # then one more each time a wait of 1, 2, 4... seconds has run out during the storm.
    expired = int(math.log2(elapsed + 1))
    assert 6 <= statuses.count(401) <= 6 + expired, (statuses.count(401), elapsed)
    assert set(statuses) <= {401, 429, 503}


def test_enrolment_code_guesses_back_off(live: tuple[LiveServer, Admin]) -> None:
    server, admin = live
    admin.camp()
    guess = {
        "code": "AAAA-AAAA-AAAA-AAAA",
        "protocol": "1",
        "signing_key": "A" * 43 + "=",
        "exchange_key": "A" * 43 + "=",
        "proof": "A" * 86 + "==",
    }
    with httpx.Client(base_url=server.url, timeout=10) as http:
        statuses = [http.post("/v1/devices/enroll", json=guess).status_code for _ in range(15)]
    assert statuses == [400] * 11 + [429] * 4, statuses


def test_odd_requests_get_4xx_and_private_answers_carry_no_store(
    live: tuple[LiveServer, Admin], db: Engine
) -> None:
    server, admin = live
    camp = admin.camp()
    coordinator = make_user(db, "coordinator", [camp], scopes=["pii:read"])
    with httpx.Client(base_url=server.url, timeout=30) as http:
        chunks = (b"\0" * 65536 for _ in range(48))  # 3 MB, chunked, anonymous
        too_big = http.put(
            "/v1/sync/batches/00000000-0000-7000-8000-000000000001",
            content=chunks,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert too_big.status_code == 413
        persons = http.get("/v1/persons", params={"camp": camp}, headers=bearer(coordinator))
        health = http.get("/healthz")
        ready = http.get("/readyz")
    assert persons.status_code == 200
    assert persons.headers["cache-control"] == "no-store"
    for response in (persons, health, ready):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "server" not in response.headers
    assert ready.json() == {"status": "ready"}
