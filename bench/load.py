"""Load benchmark: a real server under many concurrent coordinators, and tablets syncing.

    .venv/bin/python bench/load.py [--db sqlite|postgresql] [--workers N] [--seconds S]
                                   [--scenarios c50,c200,c1000,mixed] [--retry-after]
                                   [--json PATH]

It starts ``campsync serve`` on a free loopback port, running the ``api`` of the checkout this
file lives in (copy it into a worktree to measure another commit; the path is printed). The
camp is seeded through the real sync path (one tablet pushes households and their people), and
an admin, a coordinator and an integrator come from ``campsync admin create-user``. Then each
scenario runs for ``--seconds``:

- ``cN``: N clients on N connections send coordinator reads back to back (the camp list, a
  page of households, one household, the camp's stats), with coordinator and integrator tokens.
- ``mixed``: tablets push small batches and pull their camp's changes while coordinators read.

Clients ignore ``Retry-After``, as an abusive caller would; with ``--retry-after`` a client
that got a 503 waits as long as it says before its next request, as the campsync client does.
Coordinators speak HTTP/1.1 themselves (``Keepalive``): through httpx 200 of them kept the load
generator's core busy, and their latencies were mostly its own scheduling.

Every request has a client timeout, so a server that hangs shows up as timeouts. Meanwhile a
separate process asks ``GET /healthz`` every 50 ms on its own connection, and a thread samples
the server's RSS (all its processes). Figures are printed, never asserted; 500s, timeouts and
connection errors are counted apart and called out; a server still hung 60 s after a scenario
is restarted for the next one, and says so. The load generator shares the machine's cores with
the server (and PostgreSQL): its own CPU is printed with each scenario. The server logs every
request (``CAMPSYNC_LOG_LEVEL=INFO`` unless set), and each scenario's requests are timed again
from that log, as the server's outermost middleware measured them (its admission queue
included): requests carry ``X-Request-ID: bench-<kind>`` to be told apart. CAMPSYNC_* variables
in the environment reach the server, to try settings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from campsync_sync import PullPage, uuid7  # noqa: E402
from sqlalchemy import create_engine, make_url, text  # noqa: E402

from tests.server import free_port  # noqa: E402
from tests.synckit import OCTETS, Tablet  # noqa: E402

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/"
CAMP = "bench-camp"
SCENARIOS = ("c50", "c200", "c1000", "mixed")
"""The default run; any ``c<N>`` is a scenario of N coordinators."""
MAX_REQUESTS_PER_CLIENT = 100_000
"""A bound on every client loop besides its deadline."""
CLI = (sys.executable, "-c", "from api.cli import main; main()")
ERROR_PAUSE = 0.1
"""After a connection error: a dead server refuses at once, and a client must not spin."""


# --------------------------------------------------------------------------- the server


class Server:
    """``campsync serve`` in a child process, from the ``api`` of this checkout."""

    def __init__(self, database_url: str, workdir: Path, workers: int) -> None:
        self.workdir, self.workers = workdir, workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # The caller's CAMPSYNC_* settings pass through; where the data lives does not. ROOT
        # first on the path, and a working directory outside any checkout (a bare `-c` puts
        # it first on sys.path), so the server imports this checkout's api and no other.
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        self.env = {
            "CAMPSYNC_LOG_LEVEL": "INFO",  # the access log, for the server-side times
            **os.environ,
            "CAMPSYNC_DATABASE_URL": database_url,
            "CAMPSYNC_DATA_DIR": str(workdir),
            "CAMPSYNC_PUBLIC_URL": self.url,
            "PYTHONPATH": path,
        }
        self.log_path = workdir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def python(self, *args: str, timeout: float = 120) -> str:
        """Run Python in the server's environment; its stdout's last line."""
        done = subprocess.run(
            [sys.executable, *args],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode:
            raise RuntimeError(f"{args[-3:]} failed: {done.stderr.strip()[-500:]}")
        return done.stdout.strip().splitlines()[-1]

    def cli(self, *args: str) -> str:
        return self.python(*CLI[1:], *args)

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*CLI, "serve", "--port", str(self.port), "--workers", str(self.workers)],
                env=self.env,
                cwd=self.workdir,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.alive():
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError(f"the server did not start: {self.log()[-2000:]}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def pids(self) -> list[int]:
        """The server process and all its descendants (uvicorn's workers)."""
        todo, found = [self.process.pid] if self.process else [], []
        while todo:
            pid = todo.pop()
            try:
                for task in Path(f"/proc/{pid}/task").iterdir():
                    todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found.append(pid)
        return found

    def rss_mb(self) -> float:
        kb = 0
        for pid in self.pids():
            try:
                lines = Path(f"/proc/{pid}/status").read_text().splitlines()
            except OSError:
                continue
            kb += sum(int(ln.split()[1]) for ln in lines if ln.startswith("VmRSS:"))
        return kb / 1024

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def lines_since(self, offset: int) -> list[str]:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace").splitlines()

    def errors_since(self, offset: int) -> dict[str, int]:
        """Errors the server logged after ``offset``, by exception type (or message)."""
        found: Counter[str] = Counter()
        for line in self.lines_since(offset):
            if line.startswith("{") and '"level": "ERROR"' in line:
                entry = json.loads(line)
                found[entry.get("exc_type") or entry.get("msg", "?")] += 1
            elif line.startswith(("ERROR", "Traceback")):  # text logs, uvicorn's own
                found[line[:60]] += 1
        return dict(found)

    def requests_since(self, offset: int, kinds: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The bench's requests in the access log after ``offset``, by kind: counts by status,
        and the durations of 200s and 503s the server measured (JSON logs only)."""
        ms: dict[str, defaultdict[int, list[float]]] = {
            f"bench-{k}": defaultdict(list) for k in kinds
        }
        for line in self.lines_since(offset):
            if line.startswith("{") and '"msg": "request"' in line:
                entry = json.loads(line)
                if (by_code := ms.get(entry.get("request_id", ""))) is not None:
                    by_code[entry["status"]].append(entry["duration_ms"])
        return {kind.removeprefix("bench-"): timings(by_code) for kind, by_code in ms.items()}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is None:
            return
        family = self.pids()
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for pid in family[1:]:  # a worker its supervisor could not stop in time
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        self.process = None


def fresh_postgres(base: str, name: str, *, drop_only: bool = False) -> str:
    admin = create_engine(
        make_url(base).set(database="postgres").render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if not drop_only:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(base).set(database=name).render_as_string(hide_password=False)


@dataclass
class Camp:
    households: list[uuid.UUID]
    tokens: list[str]
    """Coordinator, then integrator."""
    tablets: list[Tablet]


def seed(server: Server, households: int, people: int, tablets: int) -> Camp:
    """Users from the CLI; households and people pushed by a tablet; tablets enrolled."""
    server.cli("admin", "create-camp", "--id", CAMP, "--name", "Bench camp")
    admin = server.cli("admin", "create-user", "--username", "admin", "--role", "admin")
    tokens = [
        server.cli("admin", "create-user", "--username", role, "--role", role, "--camp", CAMP)
        for role in ("coordinator", "integrator")
    ]
    server.start()
    http = httpx.Client(base_url=server.url, timeout=60)
    enrolled = []
    for _ in range(tablets + 1):
        code = http.post(
            f"/v1/camps/{CAMP}/enrollment-codes", headers={"Authorization": f"Bearer {admin}"}
        ).json()["code"]
        tablet = Tablet(http)  # type: ignore[arg-type]  # httpx's keywords are narrower
        tablet.enroll(code)
        enrolled.append(tablet)
    seeder, ids, ops = enrolled[0], [], []
    for n in range(households):
        ids.append(uuid7())
        ops += family(seeder, ids[-1], people, n)
        if len(ops) >= 500 or n == households - 1:
            outcomes = {r.outcome.value for r in seeder.push(ops).results}
            assert outcomes == {"applied"}, outcomes
            ops = []
    return Camp(ids, tokens, enrolled[1:])


def family(tablet: Tablet, hid: uuid.UUID, people: int, n: int) -> list[Any]:
    needs = [("food", "shelter", "health", "wash")[n % 4]]
    ops = [tablet.household(hid, arrival_date="2026-11-20", phone=f"+93700{n:06d}", needs=needs)]
    for k in range(people):
        given = ("Ahmad", "Fatima", "Zahra", "Rahim", "Laila", "Karim")[(n + k) % 6]
        ops.append(tablet.person(hid, given_name=given, family_name=f"Family{n % 97}"))
    return ops


# --------------------------------------------------------------------------- traffic


def quantiles(ms: list[float]) -> tuple[float | None, float | None, float | None]:
    """p50, p99 and max, or ``None`` for each without a single sample."""
    if not ms:
        return None, None, None
    ms = sorted(ms)
    return (
        round(ms[len(ms) // 2], 1),
        round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 1),
        round(ms[-1], 1),
    )


def timings(ms: dict[int, list[float]]) -> dict[str, Any]:
    """Answers by status, and p50, p99 and max of the 200s and of the 503s."""
    summary: dict[str, Any] = {"codes": {str(c): len(v) for c, v in sorted(ms.items())}}
    for code in (200, 503):
        p50, p99, top = quantiles(ms.get(code, []))
        summary[str(code)] = {
            "n": len(ms.get(code, [])),
            "p50_ms": p50,
            "p99_ms": p99,
            "max_ms": top,
        }
    return summary


@dataclass
class Tally:
    """Answers and failures of one kind of request."""

    ms: defaultdict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    """Latencies by status."""
    timeouts: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    records: int = 0
    """Records pushed (accepted batches) or pulled."""

    def summary(self, wall: float) -> dict[str, Any]:
        codes = {c: len(ms) for c, ms in self.ms.items()}
        answered = sum(codes.values())
        tried = max(1, answered + self.timeouts + sum(self.errors.values()))
        others = {c: n for c, n in codes.items() if c not in (200, 500, 503)}
        return {
            "answers": answered,
            "answers_per_s": round(answered / wall, 1),
            **timings(self.ms),
            "share_200": round(100 * codes.get(200, 0) / tried, 1),
            "share_503": round(100 * codes.get(503, 0) / tried, 1),
            "share_other": round(100 * sum(others.values()) / tried, 1),
            "other_codes": {str(c): n for c, n in sorted(others.items())},
            "status_500": codes.get(500, 0),
            "timeouts": self.timeouts,
            "errors": dict(self.errors),
            "records_per_s": round(self.records / wall, 1),
        }


class Reply(NamedTuple):
    """An answer, with the names of httpx's ``Response`` (header names in lower case)."""

    status_code: int
    headers: dict[str, str]
    content: bytes


class Keepalive:
    """One coordinator's connection: GETs one after another on one kept-alive HTTP/1.1 socket.

    httpx cost the load generator 1.7 ms of CPU a request with 50 connections and 15 ms with 200
    (httpcore 1.0's pool walks its connections once per connection whenever a request comes or
    goes), so its core was busy and the latencies were its own queue; this, 0.1 ms.
    A connection the server closed (idle for 5 s, ``Connection: close``, a timeout or error
    here) is opened again for the next request, and a request whose kept connection turns out
    closed or reset before it is answered is sent again once.
    """

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.port = port
        lines = [f"Host: 127.0.0.1:{port}", *(f"{k}: {v}" for k, v in headers.items())]
        self.head = "".join(f"{line}\r\n" for line in lines) + "\r\n"
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, path: str) -> Reply:
        if self.streams is not None and self.streams[0].at_eof():  # closed while we were idle
            self.close()
        kept = self.streams is not None
        try:
            if self.streams is None:
                self.streams = await asyncio.open_connection("127.0.0.1", self.port)
            reader, writer = self.streams
            writer.write(f"GET {path} HTTP/1.1\r\n{self.head}".encode())
            reply = await self._read(reader)
        except (asyncio.IncompleteReadError, ConnectionResetError) as exc:
            self.close()
            if kept and not getattr(exc, "partial", b""):  # the server had closed it first
                return await self.get(path)
            raise
        except BaseException:  # a timeout or error mid-answer leaves the stream unusable
            self.close()
            raise
        if reply.headers.get("connection", "").lower() == "close":
            self.close()
        return reply

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> Reply:
        head = await reader.readuntil(b"\r\n\r\n")
        status, *lines = head.decode("latin-1").split("\r\n")[:-2]
        code = int(status.split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                chunks.append((await reader.readexactly(size + 2))[:-2])
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, if any
                pass
            return Reply(code, headers, b"".join(chunks))
        if "content-length" in headers:
            return Reply(code, headers, await reader.readexactly(int(headers["content-length"])))
        if code in (204, 304) or code < 200:
            return Reply(code, headers, b"")
        return Reply(code, {**headers, "connection": "close"}, await reader.read())

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def call(tally: Tally, request: Awaitable[Any], timeout: float) -> Any:
    """One request (httpx's or ``Keepalive``'s), timed; its answer, or ``None`` when it got
    none (counted as a timeout or error)."""
    started = time.perf_counter()
    try:
        # httpx's timeout bounds each read and write; this one bounds the whole exchange.
        async with asyncio.timeout(timeout):
            response = await request
    except (TimeoutError, httpx.TimeoutException):
        tally.timeouts += 1
        return None
    except (httpx.TransportError, OSError, asyncio.IncompleteReadError) as exc:
        tally.errors[type(exc).__name__] += 1
        await asyncio.sleep(ERROR_PAUSE)
        return None
    tally.ms[response.status_code].append((time.perf_counter() - started) * 1000)
    return response


@dataclass
class Load:
    client: httpx.AsyncClient
    port: int
    camp: Camp
    deadline: float
    timeout: float
    retry_after: bool
    tallies: dict[str, Tally]

    def running(self) -> range:
        return range(MAX_REQUESTS_PER_CLIENT)

    def over(self) -> bool:
        return time.monotonic() >= self.deadline

    async def back_off(self, answer: Any) -> None:
        """With ``--retry-after``, wait after a 503 as long as it asks (within the deadline)."""
        if self.retry_after and answer is not None and answer.status_code == 503:
            wait = float(answer.headers.get("retry-after", 1))
            await asyncio.sleep(max(0.0, min(wait, self.deadline - time.monotonic())))

    async def coordinator(self, n: int) -> None:
        rng = random.Random(n)
        auth = {"Authorization": f"Bearer {self.camp.tokens[n % 2]}"}
        http = Keepalive(self.port, {**auth, "X-Request-ID": "bench-coord"})
        try:
            for _ in self.running():
                if self.over():
                    return
                path = rng.choice(
                    (
                        "/v1/camps",
                        f"/v1/households?camp={CAMP}",
                        f"/v1/households/{rng.choice(self.camp.households)}",
                        f"/v1/camps/{CAMP}/stats",
                    )
                )
                await self.back_off(await call(self.tallies["coord"], http.get(path), self.timeout))
        finally:
            http.close()

    async def tablet(self, tablet: Tablet, ops: int, headers: dict[str, str]) -> None:
        """Push a batch, pull a page, again; a batch not acknowledged is sent again as it was
        (sealing a new one would skip a sequence number)."""
        pushes, pulls, cursor, pending, n = self.tallies["push"], self.tallies["pull"], 0, None, 0
        octets = {**OCTETS, "X-Request-ID": "bench-push"}
        headers = {**headers, "X-Request-ID": "bench-pull"}
        for _ in self.running():
            if self.over():
                return
            if pending is None:
                batch: list[Any] = []
                while len(batch) < ops:
                    n += 1
                    batch += family(tablet, uuid7(), 4, n)
                pending = (tablet.seal_batch(batch), len(batch))
            (batch_id, data), size = pending
            put = self.client.put(f"/v1/sync/batches/{batch_id}", content=data, headers=octets)
            answer = await call(pushes, put, self.timeout)
            if answer is not None and answer.status_code == 200:
                tablet.receipt(answer.content)
                pushes.records += size
                pending = None
            await self.back_off(answer)
            params = {"cursor": cursor, "limit": 500}
            get = self.client.get("/v1/sync/changes", params=params, headers=headers)
            answer = await call(pulls, get, self.timeout)
            if answer is not None and answer.status_code == 200:
                page = PullPage.model_validate_json(tablet.open(answer.content, "pull"))
                cursor = page.next_cursor
                pulls.records += len(page.changes)
            await self.back_off(answer)


class _Stop(Exception):
    """SIGTERM: the scenario is over."""


def probe_healthz(url: str, seconds: float) -> None:
    """In its own process, so the load generator's event loop cannot delay it: GET /healthz
    every 50 ms on one connection until SIGTERM (or ``seconds``); prints the latencies."""
    ms, failed, started, deadline = [], 0, None, time.monotonic() + seconds

    def stop(*_: object) -> None:
        raise _Stop

    signal.signal(signal.SIGTERM, stop)
    # Well past the 100 ms goal: a slower answer is counted failed, with the 10 s it took.
    with httpx.Client(timeout=10) as client:
        print("ready", flush=True)
        try:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    ok = client.get(f"{url}/healthz").status_code == 200
                except httpx.TransportError:
                    ok = False
                elapsed, started = time.perf_counter() - started, None
                ms.append(elapsed * 1000)  # a failure counts with the time it took to fail
                failed += not ok
                time.sleep(max(0.0, 0.05 - elapsed))
        except _Stop:
            # Still waiting when the load ended: past the goal already, that wait counts.
            if started is not None and (waited := time.perf_counter() - started) >= 0.1:
                ms.append(waited * 1000)
                failed += 1
    print(json.dumps({"ms": ms, "failed": failed}))


class Watch:
    """The /healthz probe's process and a thread sampling the server's RSS, for one scenario."""

    def __init__(self, server: Server, bound: float) -> None:
        self.server, self.rss, self.done = server, [server.rss_mb()], threading.Event()
        self.probe = subprocess.Popen(
            [sys.executable, __file__, "--probe", server.url, "--seconds", str(bound)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.probe.stdout is not None
        self.probe.stdout.readline()  # "ready" (or nothing, if it failed to start)
        self.sampler = threading.Thread(target=self._sample, daemon=True)
        self.sampler.start()

    def _sample(self) -> None:
        while not self.done.wait(0.2):
            self.rss.append(self.server.rss_mb())

    def stop(self) -> dict[str, Any]:
        self.done.set()
        self.sampler.join()
        self.probe.send_signal(signal.SIGTERM)
        try:
            out, _ = self.probe.communicate(timeout=20)
            health = json.loads(out)
        except (subprocess.TimeoutExpired, ValueError):
            self.probe.kill()
            self.probe.wait()
            health = {"ms": [], "failed": None}
        p50, p99, top = quantiles(health["ms"])
        return {
            "server_rss_max_mb": round(max(self.rss), 1),
            "healthz": {
                "samples": len(health["ms"]),
                "failed": health["failed"],
                "p50_ms": p50,
                "p99_ms": p99,
                "max_ms": top,
            },
        }


async def scenario(
    server: Server, camp: Camp, name: str, args: argparse.Namespace
) -> dict[str, Any]:
    clients = args.mixed_coordinators if name == "mixed" else int(name[1:])
    tablets = camp.tablets if name == "mixed" else []
    tallies = {k: Tally() for k in ("coord", *(("push", "pull") if tablets else ()))}
    # Fresh device tokens (they last 15 minutes), taken before the clock starts.
    headers = [{"Authorization": f"Bearer {t.token()}"} for t in tablets]
    # httpx carries the tablets' traffic only; each coordinator has its own Keepalive.
    connections = max(1, len(tablets))
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    bound = args.seconds + args.timeout + 30
    watch = Watch(server, bound + 30)
    cpu, started = time.process_time(), time.perf_counter()
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=args.timeout) as http:
        deadline = time.monotonic() + args.seconds
        load = Load(http, server.port, camp, deadline, args.timeout, args.retry_after, tallies)
        tasks = [load.coordinator(n) for n in range(clients)]
        tasks += [load.tablet(t, args.batch_ops, h) for t, h in zip(tablets, headers, strict=True)]
        running = [asyncio.create_task(task) for task in tasks]
        # Each request is bounded by its timeout; this bounds the whole scenario regardless.
        _, stuck = await asyncio.wait(running, timeout=bound)
        for task in stuck:
            task.cancel()
        for task in running:
            if task not in stuck:
                task.result()  # a fault of the bench itself stops the run
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "scenario": name,
        "clients": clients,
        "tablets": len(tablets),
        "wall_s": round(wall, 1),
        "stuck_clients": len(stuck),
        "bench_cpu_cores": round(cpu / wall, 2),
        **watch.stop(),
        "kinds": {kind: tally.summary(wall) for kind, tally in tallies.items()},
    }


def settle(server: Server, token: str) -> float | None:
    """Wait (60 s at most) until the server answers a read within a second; the wait in
    seconds, or ``None`` if it never did."""
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {token}"}
    while time.monotonic() < started + 60 and server.alive():
        try:
            if httpx.get(f"{server.url}/v1/camps", headers=headers, timeout=1).status_code == 200:
                time.sleep(1)
                return round(time.monotonic() - started - 1, 1)
        except httpx.TransportError:
            time.sleep(0.5)
    return None


# --------------------------------------------------------------------------- report


def cell(value: float | None, width: int, spec: str = ",.1f") -> str:
    return f"{'-' if value is None else format(value, spec):>{width}}"


def label(name: str, kind: str) -> str:
    return f"{name if kind == 'coord' else '  ' + kind:<12}"


def report(results: list[dict[str, Any]]) -> None:
    print(
        f"\nclient-side{'':<11}{'200 p50':>9}{'200 p99':>9}{'503 p50':>9}{'503 p99':>9}\n"
        f"{'scenario':<12}{'answers/s':>10}{'ms':>9}{'ms':>9}{'ms':>9}{'ms':>9}"
        f"{'200%':>7}{'503%':>7}{'other%':>7}{'500s':>7}{'t/o':>6}{'err':>6}"
    )
    loud = []
    for result in results:
        name = result["scenario"]
        for kind, s in result["kinds"].items():
            errors = sum(s["errors"].values())
            ok, busy = s["200"], s["503"]
            print(
                f"{label(name, kind)}{cell(s['answers_per_s'], 10)}"
                f"{cell(ok['p50_ms'], 9)}{cell(ok['p99_ms'], 9)}"
                f"{cell(busy['p50_ms'], 9)}{cell(busy['p99_ms'], 9)}{cell(s['share_200'], 7)}"
                f"{cell(s['share_503'], 7)}{cell(s['share_other'], 7)}"
                f"{s['status_500']:>7}{s['timeouts']:>6}{errors:>6}"
            )
            if s["status_500"] or s["timeouts"] or errors:
                loud.append(
                    f"!! {name} {kind}: {s['status_500']} answers 500, {s['timeouts']} timeouts, "
                    f"connection errors {s['errors'] or 0}"
                )
            if s["other_codes"]:
                loud.append(f"   {name} {kind}: other statuses {s['other_codes']}")
            if kind != "coord":
                loud.append(f"   {name} {kind}: {s['records_per_s']:,.0f} records/s")
    print(
        f"\nserver-side{'':<1}{'200 n':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'503 n':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'500s':>7}{'other':>7}"
    )
    for result in results:
        name = result["scenario"]
        for kind, s in result["server"].items():
            others = {c: n for c, n in s["codes"].items() if c not in ("200", "500", "503")}
            print(
                label(name, kind)
                + "".join(
                    f"{s[c]['n']:>8,}{cell(s[c]['p50_ms'], 9)}{cell(s[c]['p99_ms'], 9)}"
                    f"{cell(s[c]['max_ms'], 9)}"
                    for c in ("200", "503")
                )
                + f"{s['codes'].get('500', 0):>7,}{sum(others.values()):>7,}"
            )
            if others:
                loud.append(f"   {name} {kind}: other statuses the server sent {others}")
            sent, seen = s["codes"].get("500", 0), result["kinds"][kind]["status_500"]
            if sent > seen:
                loud.append(
                    f"!! {name} {kind}: the server sent {sent} answers 500, clients saw {seen}"
                )
            if not s["codes"] and result["kinds"][kind]["answers"]:
                loud.append(f"   {name} {kind}: no access-log lines (JSON logs at INFO needed)")
    print(
        f"\n{'scenario':<12}{'conns':>6}{'wall s':>8}{'RSS MB':>8}{'hz n':>6}{'hz p50':>10}"
        f"{'hz p99':>10}{'hz max':>10}{'hz fail':>8}{'bench CPU':>10}"
    )
    for result in results:
        name, hz = result["scenario"], result["healthz"]
        print(
            f"{name:<12}{result['clients'] + result['tablets']:>6}{result['wall_s']:>8.1f}"
            f"{result['server_rss_max_mb']:>8.0f}{hz['samples']:>6}{cell(hz['p50_ms'], 10)}"
            f"{cell(hz['p99_ms'], 10)}{cell(hz['max_ms'], 10)}{cell(hz['failed'], 8, 'd')}"
            f"{result['bench_cpu_cores']:>9.2f}c"
        )
        if hz["failed"] != 0 or hz["max_ms"] is None or hz["max_ms"] >= 100:
            loud.append(f"!! {name}: /healthz max {hz['max_ms']} ms, {hz['failed']} failed")
        if result["server_errors"]:
            loud.append(f"!! {name}: the server logged errors {result['server_errors']}")
        if result["settle_s"] is None:
            loud.append(f"!! {name}: the server did not recover within 60 s; it was restarted")
        elif result["settle_s"] > 2:
            loud.append(f"   {name}: the server answered again after {result['settle_s']} s")
        if result["stuck_clients"]:
            loud.append(f"!! {name}: {result['stuck_clients']} clients cancelled")
    print("\n".join(["", *loud]))


# --------------------------------------------------------------------------- run


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    name = f"campsync_bench_load_{os.getpid()}"
    url = fresh_postgres(args.pg_url, name) if args.db == "postgresql" else ""
    server = Server(url or f"sqlite:///{workdir / 'campsync.db'}", workdir, args.workers)
    try:
        api = server.python("-c", "import api; print(api.__file__)")
        server.cli("db", "upgrade")
        camp = seed(server, args.households, args.people, args.tablets)
        manners = "wait out Retry-After" if args.retry_after else "ignore Retry-After"
        print(
            f"campsync load benchmark: {args.db}, {args.workers} worker(s), {args.seconds:g} s a "
            f"scenario, timeout {args.timeout:g} s; {len(camp.households)} households of "
            f"{args.people} people; clients {manners}; server log level "
            f"{server.env['CAMPSYNC_LOG_LEVEL']}; server api from {api}"
        )
        results = []
        settle(server, camp.tokens[0])
        for scenario_name in args.scenarios:
            print(f"running {scenario_name} ...", flush=True)
            offset = server.log_size()
            try:
                result = asyncio.run(scenario(server, camp, scenario_name, args))
            except (httpx.HTTPError, AssertionError) as exc:  # the tablets' set-up failed
                print(f"!! {scenario_name} could not run: {type(exc).__name__} {exc}")
                result = None
            # Work the clients gave up on may still be running: wait for it to end, so it
            # counts here and not against the next scenario.
            settled = settle(server, camp.tokens[0])
            if result is not None:
                result["settle_s"] = settled
                result["server_alive"] = server.alive()
                result["server_errors"] = server.errors_since(offset)
                result["server"] = server.requests_since(offset, result["kinds"])
                results.append(result)
            if settled is None:
                # Hung or gone: the next scenario gets a fresh process on the same database.
                print(f"!! the server did not recover after {scenario_name}: restarting it")
                server.stop()
                try:
                    server.start()
                except RuntimeError as exc:
                    print(f"!! it did not start again; no further scenarios: {exc}")
                    break
        report(results)
        if not server.alive():
            print(f"!! the server exited during the run; its log ends:\n{server.log()[-2000:]}")
        return {
            "db": args.db,
            "workers": args.workers,
            "retry_after": args.retry_after,
            "api": api,
            "scenarios": results,
        }
    finally:
        server.stop()
        if args.server_log:
            shutil.copy(server.log_path, args.server_log)
        if url:
            fresh_postgres(args.pg_url, name, drop_only=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--pg-url", default=PG, help=f"PostgreSQL server (default {PG})")
    parser.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    parser.add_argument(
        "--scenarios",
        type=lambda s: [x for x in s.split(",") if x],
        default=list(SCENARIOS),
        help=f"comma-separated, among mixed and c<N> (default {','.join(SCENARIOS)})",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="per scenario (default 10)")
    parser.add_argument("--timeout", type=float, default=30.0, help="per request (default 30)")
    parser.add_argument("--households", type=int, default=1000)
    parser.add_argument("--people", type=int, default=3, help="per household (default 3)")
    parser.add_argument("--tablets", type=int, default=8, help="in the mixed load (default 8)")
    parser.add_argument("--batch-ops", type=int, default=50, help="per pushed batch (default 50)")
    parser.add_argument("--mixed-coordinators", type=int, default=50)
    parser.add_argument(
        "--retry-after",
        action="store_true",
        help="after a 503, a client waits its Retry-After (default: it sends again at once)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--server-log", type=Path, help="keep the server's log here")
    parser.add_argument("--probe", help=argparse.SUPPRESS)  # the /healthz sampler's process
    args = parser.parse_args()
    if args.probe:
        probe_healthz(args.probe, args.seconds)
        return
    unknown = {s for s in args.scenarios if s != "mixed" and not re.fullmatch(r"c[1-9]\d*", s)}
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    # The SQLite database, the server's keys and its log: gone when the run ends, however.
    with tempfile.TemporaryDirectory(prefix="campsync-bench-load-") as workdir:
        figures = run(args, Path(workdir))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
