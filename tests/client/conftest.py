"""Client fixtures: a fake server behind httpx.MockTransport and quick-to-open tablets.

Only campsync-sync and campsync-client (and pytest, hypothesis) may be imported here.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from campsync_client import RetryPolicy, Tablet, _crypto

from tests.client.fakeserver import FakeServer

PIN = "2468"
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0, max_delay=0)


@pytest.fixture(autouse=True)
def cheap_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id at 64 MiB is the point in production and a waste of CI time."""
    monkeypatch.setattr(
        _crypto, "DEFAULT_KDF", _crypto.KdfParams(memory_kib=64, iterations=1, lanes=1)
    )


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


TabletFactory = Callable[..., Tablet]


@pytest.fixture
def make_tablet(server: FakeServer, tmp_path: Path) -> Iterator[TabletFactory]:
    counter = itertools.count(1)
    opened: list[Tablet] = []

    def make(name: str | None = None, **kwargs: object) -> Tablet:
        path = tmp_path / f"{name or f'tablet-{next(counter)}'}.db"
        kwargs.setdefault("transport", server.transport())
        kwargs.setdefault("retry", FAST_RETRY)
        tablet = Tablet.enroll(server.url, server.code(), path, PIN, **kwargs)  # type: ignore[arg-type]
        opened.append(tablet)
        return tablet

    yield make
    for tablet in opened:
        tablet.close()


@pytest.fixture
def tablet(make_tablet: TabletFactory) -> Tablet:
    return make_tablet("main")


class _Handler(BaseHTTPRequestHandler):
    fake: FakeServer
    lock = threading.Lock()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        request = httpx.Request(
            self.command, f"{self.fake.url}{self.path}", headers=dict(self.headers), content=body
        )
        with self.lock:
            response = self.fake.handle(request)
        self.send_response(response.status_code)
        for key, value in response.headers.items():
            if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(response.content)))
        self.end_headers()
        self.wfile.write(response.content)

    do_GET = do_PUT = do_POST = _serve

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_fake(server: FakeServer) -> Iterator[tuple[FakeServer, str]]:
    handler = type("Handler", (_Handler,), {"fake": server})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
