"""Where a push spends the server's CPU, phase by phase: in process, one batch at a time.

    .venv/bin/python bench/push_profile.py [--db sqlite|postgresql] [--url URL] [--records N]

It enrols one tablet, seals batches of 500 registrations (the workload of ``bench/ingest.py``)
and pushes them one after another through ``api.sync.service.push_batch`` in this process: no
HTTP, no other request, so each phase's thread CPU is the server's own work and not time spent
waiting for the database or for the GIL. Phases are timed by wrapping the functions listed in
``PHASES``; for each phase it prints the median over the batches of its CPU per record.
Nested phases are included in their parents. The wrappers cost about 0.3 µs a call: the
per-record phases (``registry_row``) read a little high. Figures are printed, never asserted.

Use it to see what a change to the merge path saves: run it before and after, a few times each,
interleaved (the machine's speed drifts by 10% within minutes).
"""

from __future__ import annotations

import argparse
import collections
import functools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import ingest  # type: ignore[import-not-found]  # noqa: E402
from campsync_sync import Receipt  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from sqlmodel import Session  # noqa: E402

from api import models  # noqa: E402, F401 - every table, for the migrations
from api.audit import service as audit  # noqa: E402
from api.camps import service as camp_service  # noqa: E402
from api.camps.schemas import CampCreate  # noqa: E402
from api.config import Settings  # noqa: E402
from api.db import make_engine, upgrade  # noqa: E402
from api.main import create_app  # noqa: E402
from api.registry import bulk, store  # noqa: E402
from api.sync import merge, service  # noqa: E402
from api.users import service as user_service  # noqa: E402
from tests.synckit import Tablet  # noqa: E402

PHASES: list[tuple[Any, str, str]] = [
    (service, "push_batch", "push (all of it)"),
    (service, "parse_envelope", "  envelope framing"),
    (service, "_precheck", "  device, signature, receipt lookup"),
    (service, "_open", "  decrypt, decompress"),
    (service, "_parse_batch", "  parse and validate the batch"),
    (service, "prepare", "  normalise, clamp"),
    (service, "_apply", "  load, merge, write, acknowledge"),
    (merge, "_Scope", "    load the rows it touches"),
    (merge.BatchMerger, "merge", "    merge in memory"),
    (merge.BatchMerger, "_write", "    write records and events"),
    (store, "registry_row", "      build registry rows"),
    (store, "save_registry", "      upsert registry rows"),
    (audit, "append", "    audit entry"),
    (store, "append_changes", "    change log"),
    (Receipt, "model_validate", "    build the receipt"),
    (service, "_receipt_envelope", "    seal the receipt"),
    (bulk, "write", "  (every bulk statement)"),
]


def timed(spent: dict[str, list[float]], label: str, function: Callable[..., Any]) -> Any:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            spent[label].append(time.thread_time() - started)

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--url", help=f"PostgreSQL base URL (default {ingest.DEFAULT_PG})")
    parser.add_argument("--records", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="campsync-profile-") as workdir:
        run(args, Path(workdir))


def run(args: argparse.Namespace, workdir: Path) -> None:
    url = ingest.fresh_database(args.db, args.url, "_profile", workdir)
    engine = make_engine(url)
    upgrade(engine)
    with Session(engine) as session:
        camp_service.create_camp(
            session=session, data=CampCreate(id="profile-camp", name="Profile"), actor="bench"
        )
        _, admin = user_service.create_user(session=session, username="bench", role="admin")
    settings = Settings(
        data_dir=workdir,
        database_url=url,
        log_format="text",
        log_level="WARNING",
        public_url="http://testserver",
    )
    app = create_app(settings, engine=engine)
    spent: dict[str, list[float]] = collections.defaultdict(list)
    with TestClient(app) as client:
        code = client.post(
            "/v1/camps/profile-camp/enrollment-codes", headers={"Authorization": f"Bearer {admin}"}
        ).json()["code"]
        tablet = Tablet(client)  # type: ignore[arg-type]
        tablet.enroll(code)
        [plan] = ingest.workload([tablet], args.records)
        sealed = [tablet.seal_batch(batch) for batch in plan]
        # What each owner itself holds (a class may inherit the name): put back as it was.
        originals = [(owner, name, vars(owner).get(name)) for owner, name, _ in PHASES]
        for owner, name, label in PHASES:
            setattr(owner, name, timed(spent, label, getattr(owner, name)))
        try:
            for batch_id, data in sealed:
                service.push_batch(
                    engine=engine,
                    settings=settings,
                    keyring=app.state.keyring,
                    batch_id=batch_id,
                    data=data,
                )
        finally:
            for owner, name, original in originals:
                if original is None:
                    delattr(owner, name)
                else:
                    setattr(owner, name, original)
    engine.dispose()
    records, batches = sum(len(b) for b in plan), len(sealed)
    per_batch = records / batches
    print(
        f"campsync push profile: {args.db}, {records} records in {batches} batches, "
        "thread CPU in µs/record (median batch)"
    )
    for _, _, label in PHASES:
        calls = spent.get(label, [])
        if not calls:
            continue
        # Calls per batch are fixed (one push, one merge, 500 rows...): sum each batch's own.
        each = max(1, len(calls) // batches)
        totals = [sum(calls[i : i + each]) for i in range(0, each * batches, each)]
        print(f"  {label:40s} {statistics.median(totals) * 1e6 / per_batch:7.1f}")


if __name__ == "__main__":
    main()
