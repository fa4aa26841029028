"""Client fixtures: a fake server behind httpx.MockTransport and quick-to-open tablets.

Only campsync-sync and campsync-client (and pytest, hypothesis) may be imported here.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

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
