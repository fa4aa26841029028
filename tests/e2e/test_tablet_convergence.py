"""Several tablets, a faulty network, server restarts and skewed clocks: nothing is lost.

A Hypothesis state machine drives 3 to 6 reference tablets against the real app in-process
(a sync httpx transport over the ASGI app; "restart" is a new app over the same database).
The network drops requests, drops answers after the server committed, delivers requests twice,
replays old batches out of order; tablets are killed mid-sync and reopened with clocks skewed
from -10 to +10 years. After healing, every run must end with 0 lost, 0 duplicated and 0
stranded records, and every tablet equal to the server.

200 examples in CI; ``CAMPSYNC_SLOW=1`` runs 2,000.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from campsync_client import RetryPolicy, SyncError, Tablet, _crypto
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from api.config import Settings
from api.main import create_app
from api.registry.models import ChangeLog, Household, Person, ServiceDelivery
from tests.e2e.asgi import SyncASGITransport
from tests.e2e.clientkit import CHEAP_KDF, PIN, server_state, tablet_state
from tests.factories import bearer, make_camp, make_user

SLOW = bool(os.environ.get("CAMPSYNC_SLOW"))
RETRY = RetryPolicy(attempts=2, base_delay=0, max_delay=0)
YEAR = 365 * 24 * 3600
SKEWS = [-10 * YEAR, -YEAR, -24 * 3600, -300, 0, 300, 24 * 3600, YEAR, 10 * YEAR]
FAULTS = ["drop_request", "drop_response", "duplicate", "crash_before", "crash_after"]
NAMES = ["Karimi", "Kareemi", "Rahimi", "Ahmadi", "Noori"]
SERVICES = ["food_ration", "tent", "hygiene_kit", "health_consultation"]


SEEN: Counter[str] = Counter()


def event(*parts: str) -> None:
    """Count what the runs went through; the test checks the machine explored it all."""
    SEEN[": ".join(parts)] += 1


class Crash(BaseException):
    """The tablet app is killed."""


class Net(httpx.BaseTransport):
    """One tablet's network: faults queued for its next requests; every push is recorded."""

    def __init__(self, server: SyncASGITransport, pushes: list[tuple[str, bytes]]) -> None:
        self.server = server
        self.pushes = pushes
        self.faults: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        content = request.read()
        if request.method == "PUT":
            self.pushes.append((str(request.url), content))
        fault = self.faults.pop(0) if self.faults else None
        if fault == "drop_request":
            raise httpx.ConnectError("dropped", request=request)
        if fault == "crash_before":
            raise Crash
        response = self.server.handle_request(request)
        if fault == "duplicate":
            response = self.server.handle_request(request)
        if fault == "drop_response":
            raise httpx.ReadError("answer lost", request=request)
        if fault == "crash_after":
            raise Crash
        return response


class Fleet(RuleBasedStateMachine):
    """Tablets of one camp, the server, and what was committed on each tablet."""

    engine: Engine
    app_settings: Settings
    admin_token: str
    root: Path

    def __init__(self) -> None:
        super().__init__()
        self.camp = make_camp(self.engine)
        self.server = SyncASGITransport(create_app(self.app_settings, engine=self.engine))
        self.http = httpx.Client(transport=self.server, base_url="http://campsync.test")
        self.pushes: list[tuple[str, bytes]] = []
        self.tablets: list[Tablet] = []
        self.nets: list[Net] = []
        self.paths: list[Path] = []
        self.skews: list[int] = []
        self.households: set[uuid.UUID] = set()
        self.deleted: set[uuid.UUID] = set()
        self.persons: dict[uuid.UUID, uuid.UUID] = {}
        self.services: set[uuid.UUID] = set()
        self.example = self.root / uuid.uuid4().hex
        self.example.mkdir()

    # ------------------------------------------------------------------ setup

    def _code(self) -> str:
        answer = self.http.post(
            f"/v1/camps/{self.camp}/enrollment-codes", json={}, headers=bearer(self.admin_token)
        )
        assert answer.status_code == 201, answer.text
        return str(answer.json()["code"])

    def _clock(self, skew: int) -> Any:
        return lambda: time.time() + skew

    @initialize(count=st.integers(3, 6))
    def enrol(self, count: int) -> None:
        for i in range(count):
            net = Net(self.server, self.pushes)
            path = self.example / f"tablet-{i}.db"
            tablet = Tablet.enroll(
                "http://campsync.test", self._code(), path, PIN, transport=net, retry=RETRY
            )
            self.tablets.append(tablet)
            self.nets.append(net)
            self.paths.append(path)
            self.skews.append(0)
            household = tablet.register_household(
                {"given_name": "First", "family_name": NAMES[i % len(NAMES)]},
                [{"given_name": "Child"}],
                needs={"food"},
            )
            self.households.add(household.id)
            self.persons.update({p.id: household.id for p in household.members})

    def _reopen(self, i: int) -> None:
        self.tablets[i] = Tablet.open(
            self.paths[i],
            PIN,
            transport=self.nets[i],
            retry=RETRY,
            clock=self._clock(self.skews[i]),
        )

    def _pick(self, data: st.DataObject, items: list[Any]) -> Any:
        return data.draw(st.sampled_from(items)) if items else None

    # ------------------------------------------------------------------ offline work

    @rule(
        data=st.data(), members=st.integers(0, 2), need=st.sampled_from(["food", "shelter", "wash"])
    )
    def register(self, data: st.DataObject, members: int, need: str) -> None:
        tablet = self._pick(data, self.tablets)
        household = tablet.register_household(
            {"given_name": "Head", "family_name": data.draw(st.sampled_from(NAMES))},
            [{"given_name": f"Member{m}"} for m in range(members)],
            needs={need},
        )
        self.households.add(household.id)
        for person in household.members:
            self.persons[person.id] = household.id

    @rule(
        data=st.data(),
        shelter=st.sampled_from(["none", "tent_assigned", "host_family"]),
        add=st.sampled_from(["health", "cash", "food"]),
        remove=st.sampled_from(["food", "shelter", "wash"]),
    )
    def edit_household(self, data: st.DataObject, shelter: str, add: str, remove: str) -> None:
        tablet = self._pick(data, self.tablets)
        household = self._pick(data, tablet.households())
        if household is None:
            return
        tablet.update_household(household.id, shelter_status=shelter)
        tablet.add_needs(household.id, add)
        tablet.remove_needs(household.id, remove)

    @rule(data=st.data(), name=st.sampled_from(NAMES))
    def edit_person(self, data: st.DataObject, name: str) -> None:
        tablet = self._pick(data, self.tablets)
        people = [p for h in tablet.households() for p in h.members]
        person = self._pick(data, people)
        if person is not None:
            tablet.update_person(person.id, family_name=name)

    @rule(data=st.data())
    def add_member(self, data: st.DataObject) -> None:
        tablet = self._pick(data, self.tablets)
        household = self._pick(data, tablet.households())
        if household is not None:
            person = tablet.add_person(household.id, given_name="Newborn", birth_year=2026)
            self.persons[person.id] = household.id

    @rule(data=st.data())
    def delete_household(self, data: st.DataObject) -> None:
        tablet = self._pick(data, self.tablets)
        household = self._pick(data, tablet.households())
        if household is not None:
            tablet.delete_household(household.id, "duplicate")
            self.deleted.add(household.id)

    @rule(data=st.data(), service=st.sampled_from(SERVICES))
    def record_service(self, data: st.DataObject, service: str) -> None:
        tablet = self._pick(data, self.tablets)
        household = self._pick(data, tablet.households())
        if household is not None:
            self.services.add(tablet.record_service(household.id, service).id)

    # ------------------------------------------------------------------ the network and the server

    def _sync(self, i: int, faults: list[str]) -> None:
        self.nets[i].faults = list(faults)
        try:
            report = self.tablets[i].sync()
            event("sync completed", "with faults" if faults else "clean")
            if report.conflicts:
                event("conflict reported")
            if report.flagged:
                event("double distribution flagged")
        except SyncError as exc:
            event("sync failed", type(exc).__name__)  # the faults won: all stays queued
        except Crash:
            event("tablet killed mid-sync")
            self.tablets[i]._r.store.conn.close()  # no clean shutdown
            self._reopen(i)
        self.nets[i].faults = []

    @rule(data=st.data(), faults=st.lists(st.sampled_from(FAULTS), max_size=3))
    def sync(self, data: st.DataObject, faults: list[str]) -> None:
        self._sync(data.draw(st.integers(0, len(self.tablets) - 1)), faults)

    @rule(faults=st.lists(st.lists(st.sampled_from(FAULTS), max_size=2), min_size=6, max_size=6))
    def everyone_syncs(self, faults: list[list[str]]) -> None:
        for i in range(len(self.tablets)):
            self._sync(i, faults[i])

    @rule(data=st.data())
    @precondition(lambda self: self.pushes)
    def replay_old_batch(self, data: st.DataObject) -> None:
        """A relay delivers a batch again, late and out of order."""
        url, content = self._pick(data, self.pushes)
        response = self.server.handle_request(
            httpx.Request(
                "PUT", url, content=content, headers={"content-type": "application/octet-stream"}
            )
        )
        assert response.status_code in (200, 409), response.text
        event("replayed batch answered", str(response.status_code))

    @rule()
    def restart_server(self) -> None:
        self.server.restart(create_app(self.app_settings, engine=self.engine))

    @rule(data=st.data(), skew=st.sampled_from(SKEWS))
    def restart_tablet_with_skewed_clock(self, data: st.DataObject, skew: int) -> None:
        i = data.draw(st.integers(0, len(self.tablets) - 1))
        self.tablets[i].close()
        self.skews[i] = skew
        self._reopen(i)

    @invariant()
    def nothing_applied_twice(self) -> None:
        with Session(self.engine) as session:
            total, distinct = session.execute(
                select(func.count(ChangeLog.op_id), func.count(ChangeLog.op_id.distinct())).where(
                    ChangeLog.camp_id == self.camp
                )
            ).one()
        assert total == distinct

    # ------------------------------------------------------------------ the end

    def teardown(self) -> None:
        try:
            if self.tablets:
                self.heal_and_check()
        finally:
            for tablet in self.tablets:
                tablet.close()
            self.http.close()
            self.server.shutdown()

    def heal_and_check(self) -> None:
        for net in self.nets:
            net.faults = []
        for _ in range(3):
            for tablet in self.tablets:
                tablet.sync()
        for tablet in self.tablets:  # 0 stranded
            assert tablet.pending() == 0
            assert tablet.status().sealed_batches == 0
        expected = server_state(self.engine, self.camp)
        event("records at the end", str(min(len(expected) // 10 * 10, 50)))
        for tablet in self.tablets:  # every tablet equals the server
            assert tablet_state(tablet) == expected
        with Session(self.engine) as session:  # 0 lost, 0 duplicated
            stored = {
                h.id: h.is_deleted
                for h in session.execute(
                    select(Household).where(Household.camp_id == self.camp)
                ).scalars()
            }
            people = set(
                session.execute(select(Person.id).where(Person.camp_id == self.camp)).scalars()
            )
            services = list(
                session.execute(
                    select(ServiceDelivery.id).where(ServiceDelivery.camp_id == self.camp)
                ).scalars()
            )
        assert set(stored) == self.households
        assert {h for h, deleted in stored.items() if deleted} == self.deleted
        assert people == set(self.persons)
        assert sorted(services) == sorted(self.services)
        self.nothing_applied_twice()


@pytest.mark.timeout(1800)
def test_tablets_converge_whatever_the_network_does(
    db: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(_crypto, "DEFAULT_KDF", CHEAP_KDF)
    Fleet.engine = db
    Fleet.app_settings = settings
    Fleet.admin_token = make_user(db, "admin")
    Fleet.root = tmp_path
    SEEN.clear()
    run_state_machine_as_test(Fleet, settings=settings_for_ci())
    with capsys.disabled():
        print("\n" + "\n".join(f"  {count:6} {what}" for what, count in sorted(SEEN.items())))
    explored = {what.split(":")[0] for what in SEEN}
    assert {"sync completed", "sync failed", "tablet killed mid-sync"} <= explored


def settings_for_ci() -> hsettings:
    return hsettings(
        max_examples=int(os.environ.get("CAMPSYNC_EXAMPLES", 2000 if SLOW else 200)),
        stateful_step_count=50 if SLOW else 20,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
