"""Coordinator API at scale: a camp of 100,000 households, timed through the HTTP stack.

Loads households and people (with realistic, transliterated names and their search keys) in
bulk, then times the coordinator's reads in-process (ASGI, the whole FastAPI stack) and, on
PostgreSQL, prints the plan of each list query. Figures are printed, never asserted.

    .venv/bin/python bench/coordinator_scale.py                       # SQLite in a temp dir
    .venv/bin/python bench/coordinator_scale.py \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/campsync_bench

A PostgreSQL database named in the URL is dropped and created afresh.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from campsync_sync import name_keys, uuid7
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, insert, make_url, text
from sqlmodel import Session

from api.camps import service as camps
from api.camps.schemas import CampCreate
from api.config import Settings
from api.db import make_engine, upgrade
from api.main import create_app
from api.registry.models import Household, Person, ServiceDelivery
from api.users import service as users

GIVEN = [
    "Mohammad",
    "Muhammad",
    "Mohammed",
    "Ahmad",
    "Ahmed",
    "Abdul",
    "Abdol",
    "Gul",
    "Fatima",
    "Fatema",
    "Zarghuna",
    "Nazia",
    "Khadija",
    "Hamid",
    "Hameed",
    "Rahim",
    "Karim",
    "Laila",
    "Shabnam",
    "Omid",
    "Yusuf",
    "Yousef",
    "Farida",
    "Bibi",
    "Sayed",
    "Sayyid",
    "Qasim",
]
FAMILY = [
    "Stanekzai",
    "Stanikzai",
    "Ahmadzai",
    "Ahmadzay",
    "Popalzai",
    "Barakzai",
    "Karimi",
    "Rahimi",
    "Hashimi",
    "Hashemi",
    "Sadat",
    "Noori",
    "Nuri",
    "Wardak",
    "Safi",
    "Mohmand",
    "Shinwari",
    "Afridi",
    "Yousufzai",
    "Yusufzai",
    "Kakar",
    "Achakzai",
    "Durrani",
]
NEEDS = ["shelter", "food", "health", "nfi", "wash", "protection", "transport", "cash"]
CAMP = "torkham-1"


def fresh_database(url: str) -> str:
    if not url.startswith("postgresql"):
        return url
    parsed = make_url(url)
    admin = make_engine(
        parsed.set(database="postgres").render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()
    return url


def chunks(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def load(engine: Engine, households: int, people_per: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC)
    start = time.perf_counter()
    hh_ids: list[uuid.UUID] = []

    def household_rows() -> Iterator[dict[str, Any]]:
        for n in range(households):
            hid = uuid7()
            hh_ids.append(hid)
            yield {
                "id": hid,
                "camp_id": CAMP,
                "status": "active",
                "is_deleted": False,
                "arrival_date": (now - dt.timedelta(days=rng.randrange(365))).date(),
                "arrival_type": "deported",
                "phone": f"+93700{n:06d}",
                "needs": sorted(rng.sample(NEEDS, rng.randint(1, 4))),
                "vulnerabilities": [],
                "clocks": {},
                "set_clocks": {},
                "created_at": now,
                "updated_at": now - dt.timedelta(seconds=households - n),
            }

    def person_rows() -> Iterator[dict[str, Any]]:
        for hid in hh_ids:
            family = rng.choice(FAMILY)
            for _ in range(people_per):
                given = rng.choice(GIVEN)
                yield {
                    "id": uuid7(),
                    "camp_id": CAMP,
                    "household_id": hid,
                    "status": "active",
                    "is_deleted": False,
                    "given_name": given,
                    "family_name": family,
                    "sex": rng.choice(["female", "male"]),
                    "birth_year": rng.randint(1940, 2025),
                    "vulnerabilities": [],
                    "name_keys": name_keys([given, family]),
                    "clocks": {},
                    "set_clocks": {},
                    "created_at": now,
                    "updated_at": now,
                }

    def service_rows() -> Iterator[dict[str, Any]]:
        for hid in hh_ids[:: max(1, households // 20_000)]:
            yield {
                "id": uuid7(),
                "camp_id": CAMP,
                "household_id": hid,
                "service": "food_ration",
                "quantity": 1.0,
                "delivered_at": now - dt.timedelta(days=rng.randrange(30)),
                "hlc": "0" * 32,
                "created_at": now,
            }

    counts = {}
    for table, rows in (
        (Household, household_rows()),
        (Person, person_rows()),
        (ServiceDelivery, service_rows()),
    ):
        n = 0
        for batch in chunks(rows, 5000):
            with engine.begin() as conn:
                conn.execute(insert(table.__table__), batch)  # type: ignore[attr-defined]
            n += len(batch)
        counts[table.__tablename__] = n  # type: ignore[attr-defined]
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    seconds = time.perf_counter() - start
    total = sum(counts.values())
    print(f"loaded {counts} in {seconds:.1f} s ({total / seconds:,.0f} rows/s)")
    return {"households": hh_ids}


def current_rss() -> int:
    """Resident memory now, in bytes (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def timed(name: str, call: Callable[[], Any], repeat: int) -> None:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = call()
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (name, response.status_code, response.text[:200])
    samples.sort()
    p95 = samples[min(len(samples) - 1, math.ceil(len(samples) * 0.95) - 1)]
    print(f"  {name:<48} median {statistics.median(samples):7.1f} ms   p95 {p95:7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--households", type=int, default=100_000)
    parser.add_argument("--people-per-household", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="campsync-bench-"))
    url = fresh_database(args.database_url or f"sqlite:///{workdir / 'bench.db'}")
    engine = make_engine(url)
    upgrade(engine)
    with Session(engine) as session:
        camps.create_camp(session=session, data=CampCreate(id=CAMP, name="Torkham"), actor="bench")
        _, token = users.create_user(
            session=session,
            username="coord",
            role="coordinator",
            camps=[CAMP],
            scopes=["pii:export"],
        )
    print(
        f"database: {engine.dialect.name}; {args.households:,} households, "
        f"{args.people_per_household} people each"
    )
    data = load(engine, args.households, args.people_per_household, seed=7)

    statements: list[tuple[str, Any]] = []

    def grab(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        statements.append((statement, parameters))

    app = create_app(
        Settings(database_url=url, data_dir=workdir, log_level="WARNING"), engine=engine
    )
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(app) as client:
        get = lambda path, **params: client.get(path, params=params, headers=headers)  # noqa: E731
        middle = sorted(data["households"])[len(data["households"]) // 2]
        deep = json.dumps(["households", str(middle)]).encode()
        import base64

        deep_cursor = base64.urlsafe_b64encode(deep).decode().rstrip("=")
        since = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).isoformat()
        cases: list[tuple[str, Callable[[], Any]]] = [
            ("households, first page (50)", lambda: get("/v1/households", camp=CAMP)),
            ("households, page 500 rows", lambda: get("/v1/households", camp=CAMP, limit=500)),
            (
                "households, deep page (cursor at 50%)",
                lambda: get("/v1/households", camp=CAMP, cursor=deep_cursor),
            ),
            (
                "households, needs=food&needs=cash",
                lambda: get("/v1/households", camp=CAMP, needs=["food", "cash"]),
            ),
            (
                "households, arrived in a 7-day range",
                lambda: get(
                    "/v1/households", camp=CAMP, arrived_from="2026-06-01", arrived_to="2026-06-07"
                ),
            ),
            (
                "households, updated in the last 5 minutes",
                lambda: get("/v1/households", camp=CAMP, updated_since=since),
            ),
            (
                "households, q=Muhammad Stanikzai",
                lambda: get("/v1/households", camp=CAMP, q="Muhammad Stanikzai"),
            ),
            (
                "persons, q=Abdol Ahmadzay",
                lambda: get("/v1/persons", camp=CAMP, q="Abdol Ahmadzay"),
            ),
            ("persons, first page", lambda: get("/v1/persons", camp=CAMP)),
            ("household detail", lambda: get(f"/v1/households/{middle}")),
            ("services, first page", lambda: get("/v1/services", camp=CAMP)),
            ("conflicts, open", lambda: get("/v1/conflicts", camp=CAMP)),
            ("camp stats", lambda: get(f"/v1/camps/{CAMP}/stats")),
        ]
        print(f"timings over {args.repeat} calls, through the HTTP stack:")
        for name, call in cases:
            timed(name, call, args.repeat)

        rss_before = current_rss()
        rss_peak = rss_before
        started = time.perf_counter()
        size = 0
        with client.stream(
            "POST",
            "/v1/exports",
            headers=headers,
            json={
                "camp": CAMP,
                "purpose": "Benchmark of a full-camp distribution list",
                "columns": ["household_id", "head_given_name", "phone", "members", "needs"],
            },
        ) as response:
            for chunk in response.iter_raw():
                size += len(chunk)
                rss_peak = max(rss_peak, current_rss())
        seconds = time.perf_counter() - started
        rows = int(response.headers["x-export-rows"])
        print(
            f"  export of {rows:,} households: {seconds:.1f} s ({rows / seconds:,.0f} rows/s), "
            f"{size / 1e6:.1f} MB; RSS {rss_before / 2**20:.0f} MiB before, "
            f"at most +{(rss_peak - rss_before) / 2**20:.1f} MiB while streaming"
        )

        if engine.dialect.name == "postgresql":
            event.listen(engine, "before_cursor_execute", grab)
            for name, call in cases[:8]:
                statements.clear()
                call()
                [main_statement] = [
                    (s, p)
                    for s, p in statements
                    if ("LIMIT" in s and ("FROM household" in s or "FROM person" in s))
                ][-1:]
                with engine.connect() as conn:
                    plan = (
                        conn.exec_driver_sql(
                            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + main_statement[0],
                            main_statement[1],
                        )
                        .scalars()
                        .all()
                    )
                print(f"\nplan: {name}")
                for line in plan:
                    print(f"    {line}")
            event.remove(engine, "before_cursor_execute", grab)
    engine.dispose()


if __name__ == "__main__":
    main()
