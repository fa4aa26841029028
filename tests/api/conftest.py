"""Fixtures of the server's tests."""

from __future__ import annotations

import secrets

import pytest
from campsync_sync import Clock


@pytest.fixture(autouse=True)
def fresh_server_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with a new server clock (``api.clock`` keeps one per process).

    A test that stores a clock years ahead moves the server's clock there, by design; the
    next test in the same process would then see no clock from the future to clamp.
    """
    from api import clock

    monkeypatch.setattr(clock, "_clock", Clock(node=secrets.randbits(64)))
