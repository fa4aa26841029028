"""Admission control, driven through ASGI directly: turns, a bounded queue, quick 503s."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from api.admission import Admission, AdmissionMiddleware


class SlowApp:
    """Answers 200 after ``hold`` seconds; counts the requests it worked on."""

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.started = 0
        self.running = 0
        self.most = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.started += 1
        self.running += 1
        self.most = max(self.most, self.running)
        await asyncio.sleep(self.hold)
        self.running -= 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def _scope(path: str = "/v1/camps", client: tuple[str, int] | None = None) -> Any:
    return {"type": "http", "method": "GET", "path": path, "headers": [], "client": client}


async def _call(app: Any, scope: Any, *, hang_up_after: float | None = None) -> dict[str, Any]:
    sent: dict[str, Any] = {}
    messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await messages.put({"type": "http.request", "body": b"", "more_body": False})
    if hang_up_after is not None:
        asyncio.get_running_loop().call_later(
            hang_up_after, messages.put_nowait, {"type": "http.disconnect"}
        )

    async def receive() -> dict[str, Any]:
        return await messages.get()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent["status"] = message["status"]
            sent["headers"] = dict(message["headers"])
        else:
            sent["body"] = message.get("body", b"")

    await app(scope, receive, send)
    return sent


def _middleware(inner: Any, limit: int, queued: int, wait: float) -> AdmissionMiddleware:
    exempt = lambda scope: scope["path"] == "/healthz"  # noqa: E731
    return AdmissionMiddleware(inner, Admission(limit, queued, wait), exempt)


def test_only_limit_requests_run_at_once_and_the_queue_is_served_in_turn() -> None:
    inner = SlowApp(0.02)
    app = _middleware(inner, limit=2, queued=100, wait=5)

    async def crowd() -> list[dict[str, Any]]:
        return await asyncio.gather(*(_call(app, _scope()) for _ in range(10)))

    answers = asyncio.run(crowd())
    assert [a["status"] for a in answers] == [200] * 10
    assert inner.most == 2


def test_a_full_queue_and_a_long_wait_are_answered_503_with_retry_after() -> None:
    inner = SlowApp(0.5)
    app = _middleware(inner, limit=1, queued=2, wait=0.1)

    async def crowd() -> tuple[list[dict[str, Any]], float]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        answers = await asyncio.gather(*(_call(app, _scope()) for _ in range(6)))
        return answers, loop.time() - started

    answers, _ = asyncio.run(crowd())
    statuses = sorted(a["status"] for a in answers)
    assert statuses == [200] + [503] * 5  # one ran; two waited 0.1 s; three found it full
    busy = next(a for a in answers if a["status"] == 503)
    assert busy["headers"][b"retry-after"] == b"2"
    body = json.loads(busy["body"])
    assert body["error"]["code"] == "service_unavailable"
    assert body["error"]["details"] == {"retry_after_ms": 2000}
    assert inner.started == 1


def test_a_request_whose_client_hangs_up_while_it_waits_is_never_worked_on() -> None:
    inner = SlowApp(0.3)
    app = _middleware(inner, limit=1, queued=10, wait=5)

    async def scenario() -> list[dict[str, Any]]:
        first = asyncio.ensure_future(_call(app, _scope()))
        await asyncio.sleep(0.01)
        gone = [_call(app, _scope(), hang_up_after=0.05) for _ in range(5)]
        return await asyncio.gather(first, *gone)

    answers = asyncio.run(scenario())
    assert answers[0]["status"] == 200
    assert answers[1:] == [{}] * 5  # nothing sent: nobody was there to read it
    assert inner.started == 1
    assert app.admission.abandoned == 5


def test_exempt_paths_skip_the_queue() -> None:
    inner = SlowApp(0.2)
    app = _middleware(inner, limit=1, queued=0, wait=0.01)

    async def scenario() -> list[dict[str, Any]]:
        busy = asyncio.ensure_future(_call(app, _scope()))
        await asyncio.sleep(0.01)
        health, refused = await asyncio.gather(_call(app, _scope("/healthz")), _call(app, _scope()))
        return [await busy, health, refused]

    assert [a["status"] for a in asyncio.run(scenario())] == [200, 200, 503]
    assert inner.most == 2  # the health check ran beside the request holding the only turn


def test_a_connection_that_ignores_retry_after_waits_it_out_before_its_next_answer() -> None:
    inner = SlowApp(3)
    app = _middleware(inner, limit=1, queued=0, wait=0.01)
    hammer = ("192.0.2.1", 40000)

    async def scenario() -> tuple[list[float], float]:
        loop = asyncio.get_running_loop()
        busy = asyncio.ensure_future(_call(app, _scope()))
        await asyncio.sleep(0.01)
        times = []
        for _ in range(2):  # the second comes at once, as a client ignoring Retry-After would
            started = loop.time()
            assert (await _call(app, _scope(client=hammer)))["status"] == 503
            times.append(loop.time() - started)
        started = loop.time()
        other = await _call(app, _scope(client=("192.0.2.2", 40001)))
        assert other["status"] == 503
        busy.cancel()
        return times, loop.time() - started

    (first, second), other = asyncio.run(scenario())
    assert first < 0.2  # told at once
    assert 1.0 <= second < 2.1  # then held for half to all of its Retry-After (2 s)
    assert other < 0.2  # another connection is not held up


def test_a_connection_that_waited_as_told_is_not_held() -> None:
    inner = SlowApp(3)
    app = _middleware(inner, limit=1, queued=0, wait=0.01)
    polite = ("192.0.2.3", 40002)

    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        busy = asyncio.ensure_future(_call(app, _scope()))
        await asyncio.sleep(0.01)
        assert (await _call(app, _scope(client=polite)))["status"] == 503
        await asyncio.sleep(2.0)  # Retry-After: 2
        started = loop.time()
        assert (await _call(app, _scope(client=polite)))["status"] == 503
        busy.cancel()
        return loop.time() - started

    assert asyncio.run(scenario()) < 0.2
