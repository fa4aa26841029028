"""Ingest benchmark: sealed batches over HTTP into a real server, against the raw bulk upsert.

    .venv/bin/python bench/ingest.py [--db sqlite|postgresql] [--url URL] [--records N]
                                     [--devices K] [--workers W]

It starts ``campsync serve`` (2 workers), enrols K simulated tablets, seals
batches of 500 operations (households and their people, 1 to 5) before the clock starts, and
pushes them from K threads. In the same run it writes the very rows the server stored straight
into a fresh database of the same kind, the fastest way the driver offers (SQLite: multi-row
INSERT ... ON CONFLICT in one transaction; PostgreSQL: COPY into a staging table and one
INSERT ... SELECT ... ON CONFLICT), each column's values converted by the service's own
per-column functions (orjson for JSON). Then a fresh tablet provisions the camp from cursor 0.
On PostgreSQL each timed phase starts after a CHECKPOINT, so neither pays for the other's WAL.

Figures are printed, never asserted; the last line is one JSON object. The machine's cores are
shared by the server, the database and this process: read the ratio, not the absolutes. Where
the time goes is printed as CPU per record: the server's processes, the PostgreSQL backends
serving them (when PostgreSQL runs on this machine), and the same split for the raw upsert. With
two cores, the push can reach at most 2 s of CPU per second divided by server + database CPU
per record: that sum, not the wall time, is what an optimisation has to lower.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from campsync_sync import (  # noqa: E402
    Entity,
    PatchOp,
    apply_registry_op,
    normalize_operation,
    uuid7,
)
from sqlalchemy import Engine, make_url, text  # noqa: E402
from sqlalchemy.exc import DBAPIError  # noqa: E402
from sqlmodel import Session  # noqa: E402

from api.camps import service as camp_service  # noqa: E402
from api.camps.schemas import CampCreate  # noqa: E402
from api.db import make_engine, upgrade  # noqa: E402
from api.registry import bulk, store  # noqa: E402
from api.users import service as user_service  # noqa: E402
from tests.server import free_port  # noqa: E402
from tests.synckit import Tablet  # noqa: E402

BATCH = 500
PEOPLE_PER_HOUSEHOLD = 5
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/campsync_bench"


# --------------------------------------------------------------------------- setup


def fresh_database(kind: str, url: str | None, suffix: str, workdir: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{workdir / f'campsync{suffix}.db'}"
    base = make_url(url or DEFAULT_PG)
    name = f"{base.database}{suffix}"
    admin = make_engine(
        base.set(database="postgres").render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


_LOCAL_HOSTS = (None, "", "localhost", "127.0.0.1", "::1")


def process_cpu(pid: int, name: str | None = None) -> float | None:
    """User and system CPU seconds of one local process so far; ``None`` if it is gone
    (or, with ``name``, is not a process of that name)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm, fields = stat.split("(", 1)[1].rsplit(")", 1)
    if name is not None and comm != name:
        return None
    parts = fields.split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def database_cpu(engine: Engine) -> dict[int, float] | None:
    """CPU so far of each PostgreSQL backend serving ``engine``'s database, if it runs here.

    ``None`` for SQLite (the database works inside the server's own processes) and for a
    PostgreSQL server on another host, whose processes this machine cannot see.
    """
    url = engine.url
    if url.get_backend_name() != "postgresql" or url.host not in _LOCAL_HOSTS:
        return None
    with engine.connect() as conn:
        pids = conn.execute(
            text(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalars()
        seconds = {pid: process_cpu(pid, "postgres") for pid in pids}
    if not seconds or None in seconds.values():
        return None
    return {pid: cpu for pid, cpu in seconds.items() if cpu is not None}


def settle(url: str) -> None:
    """Before a timed phase on PostgreSQL: a checkpoint, so it pays for no earlier phase's WAL."""
    if not url.startswith("postgresql"):
        return
    engine = make_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("CHECKPOINT"))
    except DBAPIError:
        print("  (no CHECKPOINT: the role may not run it; figures may carry WAL debt)")
    finally:
        engine.dispose()


class Server:
    def __init__(self, url: str, data_dir: Path, workers: int) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "CAMPSYNC_DATABASE_URL": url,
            "CAMPSYNC_DATA_DIR": str(data_dir),
            "CAMPSYNC_PUBLIC_URL": self.base,
            "CAMPSYNC_LOG_LEVEL": "WARNING",
        }
        self.log = (data_dir / "server.log").open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from api.cli import main; main()",
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
            ],
            env=env,
            stdout=self.log,
            stderr=self.log,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError("the server did not start")

    def _pids(self) -> list[int]:
        pids, found = [self.process.pid], []
        while pids:
            pid = pids.pop()
            try:
                for task in Path(f"/proc/{pid}/task").iterdir():
                    pids += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found.append(pid)
        return found

    def rss_mb(self) -> float:
        total = 0
        for pid in self._pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                rss = next(ln for ln in status.splitlines() if ln.startswith("VmRSS"))
                total += int(rss.split()[1])
            except (OSError, StopIteration):
                continue
        return total / 1024

    def cpu_seconds(self) -> dict[int, float]:
        """User and system CPU of each server process so far (not the database's)."""
        return {pid: cpu for pid in self._pids() if (cpu := process_cpu(pid)) is not None}

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


GIVEN = (
    "Ahmad",
    "Fatima",
    "Mohammad",
    "Zahra",
    "Rahim",
    "Maryam",
    "Abdul",
    "Sima",
    "Karim",
    "Nadia",
    "Hamid",
    "Laila",
    "Jawad",
    "Parwana",
    "Nasir",
    "Shabnam",
    "Farid",
    "Roya",
)
FAMILY = (
    "Ahmadzai",
    "Karimi",
    "Stanekzai",
    "Popal",
    "Hotak",
    "Safi",
    "Wardak",
    "Barakzai",
    "Sultani",
    "Noori",
    "Rahimi",
    "Amiri",
    "Haidari",
    "Sadat",
    "Yousufzai",
    "Niazi",
)


def workload(tablets: list[Tablet], records: int) -> list[list[list[PatchOp]]]:
    """Per device, its batches of 500 operations: households, then their people.

    Names, sexes and birth dates vary from person to person as they do in a camp (drawn
    from fixed lists with a fixed seed), so no column is constant by accident.
    """
    pick = random.Random(2026)
    per_device = records // len(tablets)
    plans: list[list[list[PatchOp]]] = []
    for tablet in tablets:
        ops: list[PatchOp] = []
        while len(ops) < per_device:
            hid = uuid7()
            family, father = pick.choice(FAMILY), pick.choice(GIVEN)
            ops.append(
                tablet.household(
                    hid,
                    arrival_date="2026-11-20",
                    crossing_point="Torkham",
                    origin_country="Pakistan",
                    shelter_status="tent_assigned",
                    needs=["food", "shelter"],
                )
            )
            for n in range(PEOPLE_PER_HOUSEHOLD):
                ops.append(
                    tablet.person(
                        hid,
                        given_name=pick.choice(GIVEN),
                        family_name=family,
                        father_name=father,
                        sex=pick.choice(("female", "male")),
                        date_of_birth=f"{pick.randint(1950, 2025)}-0{pick.randint(1, 9)}-1{n}",
                        relationship_to_head="head" if n == 0 else "child",
                        document_type=pick.choice(("tazkira", "por_card", "acc")),
                        document_number=f"T-{uuid.uuid4().hex[:10].upper()}",
                    )
                )
        ops = ops[:per_device]
        plans.append([ops[i : i + BATCH] for i in range(0, len(ops), BATCH)])
    return plans


# --------------------------------------------------------------------------- raw baseline


def raw_rows(plans: list[list[list[PatchOp]]], camp: str) -> dict[Entity, list[dict[str, Any]]]:
    """The rows the server stores for these operations, built with the same merge rules."""
    now = dt.datetime.now(dt.UTC)
    rows: dict[Entity, list[dict[str, Any]]] = {Entity.HOUSEHOLD: [], Entity.PERSON: []}
    for batches in plans:
        for batch in batches:
            for op in batch:
                normal = normalize_operation(op)
                assert isinstance(normal, PatchOp)
                entity = Entity(normal.entity)
                state, _ = apply_registry_op(entity, None, normal)
                record = store.StoredRecord(camp, state)
                rows[entity].append(store.registry_row(entity, normal.id, record, now=now))
    return rows


@dataclass
class RawRun:
    seconds: float
    client_cpu: float
    """CPU of this process: the driver's work, and SQLite's."""
    database_cpu: float | None
    """CPU of the PostgreSQL backend, when it runs on this machine."""


def raw_upsert(engine: Engine, rows: dict[Entity, list[dict[str, Any]]]) -> RawRun:
    """Upsert the rows the fastest way this driver offers; time and CPU it took."""
    raw = engine.raw_connection()
    try:
        backend = None
        if engine.dialect.name == "postgresql":
            info = raw.driver_connection.info  # type: ignore[union-attr]
            if database_cpu(engine) is not None:
                backend = info.backend_pid
        before = process_cpu(backend, "postgres") if backend else None
        cpu, started = time.process_time(), time.perf_counter()
        if engine.dialect.name == "sqlite":
            _raw_sqlite(raw, rows)
        else:
            _raw_postgres(raw, rows)
        seconds, client = time.perf_counter() - started, time.process_time() - cpu
        after = process_cpu(backend, "postgres") if backend else None
    finally:
        raw.close()
    used = after - before if after is not None and before is not None else None
    return RawRun(seconds, client, used)


def _columns(table: Any) -> list[str]:
    return [c.name for c in table.columns]


def _values(table: Any, dialect: str, names: list[str]) -> Callable[[dict[str, Any]], list[Any]]:
    """A row's values in column order, in the very forms the service writes (its own
    per-column converters: orjson for JSON, SQLite's stored forms); columns the driver takes
    as they are pay for no call."""
    converters = bulk.converters(table, dialect, tuple(names))
    picks = [(i, f) for i, f in enumerate(converters) if f is not bulk.unchanged]

    def values(row: dict[str, Any]) -> list[Any]:
        out = [row[n] for n in names]
        for i, convert in picks:
            out[i] = convert(out[i])
        return out

    return values


def _raw_sqlite(raw: Any, rows: dict[Entity, list[dict[str, Any]]]) -> None:
    cursor = raw.cursor()
    cursor.execute("BEGIN IMMEDIATE")
    for entity, entity_rows in rows.items():
        table = store.REGISTRY_TABLES[entity]
        names = _columns(table)
        values_of = _values(table, "sqlite", names)
        updates = ", ".join(f"{n}=excluded.{n}" for n in names if n != "id")
        chunk = max(1, 30000 // len(names))
        for i in range(0, len(entity_rows), chunk):
            part = entity_rows[i : i + chunk]
            values = ", ".join(["(" + ", ".join("?" * len(names)) + ")"] * len(part))
            sql = (
                f"INSERT INTO {table.name} ({', '.join(names)}) VALUES {values} "  # noqa: S608
                f"ON CONFLICT (id) DO UPDATE SET {updates}"
            )
            cursor.execute(sql, [value for r in part for value in values_of(r)])
    cursor.execute("COMMIT")


def _raw_postgres(raw: Any, rows: dict[Entity, list[dict[str, Any]]]) -> None:
    conn = raw.driver_connection
    assert conn is not None
    with conn.cursor() as cursor:
        for entity, entity_rows in rows.items():
            table = store.REGISTRY_TABLES[entity]
            names = _columns(table)
            cursor.execute(
                f"CREATE TEMP TABLE staging_{table.name} (LIKE {table.name}) ON COMMIT DROP"
            )
            values_of = _values(table, "postgresql", names)
            with cursor.copy(f"COPY staging_{table.name} ({', '.join(names)}) FROM STDIN") as copy:
                for row in entity_rows:
                    copy.write_row(values_of(row))
            updates = ", ".join(f"{n}=EXCLUDED.{n}" for n in names if n != "id")
            cursor.execute(
                f"INSERT INTO {table.name} SELECT * FROM staging_{table.name} "  # noqa: S608
                f"ON CONFLICT (id) DO UPDATE SET {updates}"
            )
    conn.commit()


# --------------------------------------------------------------------------- run


def machine_ticks() -> tuple[int, int]:
    """Busy and total CPU ticks of the whole machine so far (all cores, all processes)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


def _per_record(seconds: float | None, records: int) -> float | None:
    return None if seconds is None else round(seconds * 1e6 / records, 1)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--url", help=f"PostgreSQL base URL (default {DEFAULT_PG})")
    parser.add_argument("--records", type=int, default=60_000)
    parser.add_argument("--devices", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="server processes (default 2)")
    args = parser.parse_args()
    # The SQLite databases and the server's keys: gone when the run ends, however it ends.
    with tempfile.TemporaryDirectory(prefix="campsync-bench-") as workdir:
        run(args, Path(workdir))


def run(args: argparse.Namespace, workdir: Path) -> None:
    workers = args.workers
    url = fresh_database(args.db, args.url, "", workdir)
    raw_url = fresh_database(args.db, args.url, "_raw", workdir)
    camp = "bench-camp"
    for target in (url, raw_url):
        engine = make_engine(target)
        upgrade(engine)
        with Session(engine) as session:
            camp_service.create_camp(
                session=session, data=CampCreate(id=camp, name="Bench"), actor="bench"
            )
        engine.dispose()
    engine = make_engine(url)
    with Session(engine) as session:
        _, admin = user_service.create_user(session=session, username="bench", role="admin")

    server = Server(url, workdir, workers)
    rss_peak = 0.0
    try:
        clients = [httpx.Client(base_url=server.base, timeout=120) for _ in range(args.devices + 1)]
        tablets = []
        for http in clients:
            code = http.post(
                f"/v1/camps/{camp}/enrollment-codes", headers={"Authorization": f"Bearer {admin}"}
            ).json()["code"]
            tablet = Tablet(http)
            tablet.enroll(code)
            tablets.append(tablet)
        pushers, puller = tablets[:-1], tablets[-1]
        plans = workload(pushers, args.records)
        sealed = [
            [t.seal_batch(batch) for batch in plan] for t, plan in zip(pushers, plans, strict=True)
        ]
        total = sum(len(b) for plan in plans for b in plan)
        latencies: list[float] = []
        failures: list[str] = []
        outcomes: dict[str, int] = {}
        lock = threading.Lock()

        def push(tablet: Tablet, batches: list[tuple[uuid.UUID, bytes]]) -> None:
            for batch_id, data in batches:
                started = time.perf_counter()
                response = tablet.put(batch_id, data)
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    if response.status_code != 200:
                        failures.append(f"{response.status_code} {response.text[:100]}")
                        continue
                    for result in tablet.receipt(response.content).results:
                        outcomes[result.outcome.value] = outcomes.get(result.outcome.value, 0) + 1

        print(
            f"campsync ingest benchmark: {args.db}, {workers} worker(s), {args.devices} devices, "
            f"{total} records in batches of {BATCH} (machine shared with the database)"
        )
        threads = [
            threading.Thread(target=push, args=(t, s)) for t, s in zip(pushers, sealed, strict=True)
        ]
        settle(url)
        cpu_before, db_before = server.cpu_seconds(), database_cpu(engine)
        busy_before, total_before = machine_ticks()
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            rss_peak = max(rss_peak, server.rss_mb())
            time.sleep(0.2)
        push_seconds = time.perf_counter() - started
        cpu_after, db_after = server.cpu_seconds(), database_cpu(engine)
        used = {pid: cpu_after[pid] - cpu_before.get(pid, 0.0) for pid in cpu_after}
        server_cpu = sum(used.values())
        # Backends that ended during the push are missing here: a floor, not an estimate.
        db_cpu = (
            sum(db_after[pid] - db_before.get(pid, 0.0) for pid in db_after)
            if db_before is not None and db_after is not None
            else None
        )
        # Keep-alive connections stay with the worker that accepted them: with few tablets,
        # one worker may get most of them, and the run is as fast as that worker.
        split = sorted(
            (round(100 * v / server_cpu) for v in used.values() if v > 0.05 * server_cpu),
            reverse=True,
        )
        busy_after, total_after = machine_ticks()
        machine_busy = (busy_after - busy_before) / max(1, total_after - total_before)
        if failures:
            print(f"  {len(failures)} batches failed, e.g. {failures[0]}")
        records_per_s = total / push_seconds

        people = sum(1 for plan in plans for b in plan for op in b if op.entity == "person")
        started = time.perf_counter()
        rows, _, pages = puller.pull_all(0, limit=500)
        pull_seconds = time.perf_counter() - started
        rss_peak = max(rss_peak, server.rss_mb())
    finally:
        server.stop()

    raw_engine = make_engine(raw_url)
    raw = raw_rows(plans, camp)
    settle(raw_url)
    raw_run = raw_upsert(raw_engine, raw)
    raw_engine.dispose()
    engine.dispose()
    raw_per_s = total / raw_run.seconds
    ms = [x * 1000 for x in latencies]
    p50, p99 = statistics.median(ms), percentile(ms, 0.99)
    print(
        f"  push over HTTP:   {records_per_s:9,.0f} records/s  "
        f"({push_seconds:.1f} s, outcomes {outcomes})"
    )
    print(
        f"  server CPU:       {server_cpu * 1e6 / total:9,.0f} µs/record (server processes only; "
        f"split {' / '.join(f'{p}%' for p in split)})"
    )
    if db_cpu is not None:
        print(f"  database CPU:     {db_cpu * 1e6 / total:9,.0f} µs/record (PostgreSQL backends)")
    print(
        f"  machine CPU busy: {machine_busy:9.0%}  of {os.cpu_count()} cores while pushing "
        "(server, database and this process)"
    )
    raw_cpu = f"this process {raw_run.client_cpu * 1e6 / total:.0f}"
    if raw_run.database_cpu is not None:
        raw_cpu += f" + database {raw_run.database_cpu * 1e6 / total:.0f}"
    print(
        f"  raw bulk upsert:  {raw_per_s:9,.0f} records/s  ({raw_run.seconds:.1f} s; "
        f"CPU µs/record: {raw_cpu})"
    )
    print(f"  ratio:            {records_per_s / raw_per_s:9.2f}")
    print(f"  batch latency:    p50 {p50:.0f} ms, p99 {p99:.0f} ms")
    print(f"  server RSS peak:  {rss_peak:.0f} MB (all worker processes)")
    print(
        f"  provisioning pull: {len(rows) / pull_seconds:8,.0f} records/s  ({len(rows)} records, "
        f"{people} people, {pages} pages, {pull_seconds:.1f} s)"
    )
    print(
        json.dumps(
            {
                "db": args.db,
                "workers": workers,
                "devices": args.devices,
                "records": total,
                "records_per_s": round(records_per_s),
                "raw_records_per_s": round(raw_per_s),
                "ratio": round(records_per_s / raw_per_s, 3),
                "p50_ms": round(p50, 1),
                "p99_ms": round(p99, 1),
                "server_rss_mb": round(rss_peak, 1),
                "server_cpu_us_per_record": round(server_cpu * 1e6 / total, 1),
                "db_cpu_us_per_record": _per_record(db_cpu, total),
                "raw_client_cpu_us_per_record": _per_record(raw_run.client_cpu, total),
                "raw_db_cpu_us_per_record": _per_record(raw_run.database_cpu, total),
                "machine_cpu_busy": round(machine_busy, 3),
                "worker_cpu_split_pct": split,
                "pull_records_per_s": round(len(rows) / pull_seconds),
                "failed_batches": len(failures),
            }
        )
    )


if __name__ == "__main__":
    main()
