"""The authorisation matrix: every route of the app by every kind of caller (OWASP API1/API5).

Objects live in camp B. Callers: an admin; a coordinator of camp B; a coordinator of camp A;
integrators of camp B without and with the personal-data scopes; an integrator of camp A with
them; a user whose token was revoked; a tablet of camp B that was revoked, with the device token
it obtained before; nobody. Each route has one or more calls in ``MATRIX``,
each with the exact status every caller must get. A route missing from the matrix fails the
test, so a new route cannot ship without its row.

Every forbidden cell must answer the error body and nothing of camp B (no canary value, no id).
Every allowed cell of a caller without the right to read personal data must hold no personal
canary value.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import pytest
from campsync_sync import Entity
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update
from sqlmodel import Session

from api.db import write_session
from api.main import ROUTERS
from api.registry.writes import commit_server_edit
from api.security import hash_token
from api.users.models import ApiToken
from tests.factories import bearer, make_camp, make_tablet, make_user
from tests.registry_factories import (
    flags_of,
    make_conflict,
    make_device,
    make_household,
    make_person,
    make_referral,
    make_service,
)

ROLES: Final = (
    "admin",
    "coordinator_same",
    "coordinator_other",
    "integrator",
    "integrator_pii",
    "integrator_other",
    "revoked_token",
    "revoked_device",
    "anonymous",
)
PERSONAL_CANARIES: Final = ("Canarygul", "Canaryzai", "+93799000111", "CANARY-0042", "1987-06-05")


@dataclass
class World:
    engine: Engine
    camp_a: str
    camp_b: str
    household: uuid.UUID
    person: uuid.UUID
    conflict: uuid.UUID
    flag: uuid.UUID
    tokens: dict[str, str | None] = field(default_factory=dict)

    def fresh_conflict(self) -> uuid.UUID:
        return make_conflict(self.engine, self.camp_b, self.household)[1]

    def fresh_device(self) -> uuid.UUID:
        return make_device(self.engine, self.camp_b).device_id

    def fresh_user(self) -> str:
        """A coordinator of camp B for an admin to act on."""
        username = f"target-{uuid.uuid4().hex[:8]}"
        make_user(self.engine, "coordinator", [self.camp_b], username=username)
        return username

    def fresh_flag(self) -> uuid.UUID:
        make_service(self.engine, self.camp_b, self.household)
        return flags_of(self.engine, self.household)[-1]

    @property
    def secrets(self) -> tuple[str, ...]:
        """What a forbidden answer must never contain."""
        ids = (self.household, self.person, self.conflict, self.flag)
        return (*PERSONAL_CANARIES, self.camp_b, *(str(i) for i in ids))


@dataclass(frozen=True)
class Call:
    method: str
    url: str
    params: dict[str, Any] | None = None
    json: Any = None
    content: bytes | None = None


Build = Callable[[World], Call]
Expect = dict[str, int]

_UNAUTHENTICATED: Final = {"revoked_token": 401, "revoked_device": 401, "anonymous": 401}
PUBLIC: Final[Expect] = dict.fromkeys(ROLES, 200)
READ: Final[Expect] = {
    "admin": 200,
    "coordinator_same": 200,
    "coordinator_other": 404,
    "integrator": 200,
    "integrator_pii": 200,
    "integrator_other": 404,
    **_UNAUTHENTICATED,
}
LISTED: Final[Expect] = {**READ, "coordinator_other": 200, "integrator_other": 200}
PII_READ: Final[Expect] = {**READ, "integrator": 403}
STAFF_WRITE: Final[Expect] = {
    **READ,
    "integrator": 403,
    "integrator_pii": 403,
    "integrator_other": 403,
}
PII_EXPORT: Final[Expect] = {
    **READ,
    "coordinator_same": 403,  # coordinators read personal data, but exporting it is a scope
    "coordinator_other": 403,
    "integrator": 403,
}
ADMIN_ONLY: Final[Expect] = {**dict.fromkeys(ROLES, 403), "admin": 200, **_UNAUTHENTICATED}

DEVICE_ONLY: Final[Expect] = {**dict.fromkeys(ROLES, 401), "revoked_device": 403}
"""Routes for tablets: a user's token is no device token; a revoked tablet is told to wipe."""
EVERYONE: Final = dict.fromkeys

LAST: Final = frozenset({("POST", "/v1/auth/logout")})
"""Calls that end the caller's session, made after every other call."""
PURPOSE: Final = "Authorisation matrix check"
_KEY = "A" * 43 + "="  # 32 bytes of base64: a well-formed key that proves nothing


def _enrolment(w: World) -> Call:
    body = {"code": "AAAA-BBBB-CCCC-DDDD", "signing_key": _KEY, "exchange_key": _KEY, "proof": _KEY}
    return Call("POST", "/v1/devices/enroll", json=body)


MATRIX: Final[dict[tuple[str, str], list[tuple[Expect, Build]]]] = {
    ("GET", "/healthz"): [(PUBLIC, lambda w: Call("GET", "/healthz"))],
    ("GET", "/readyz"): [(PUBLIC, lambda w: Call("GET", "/readyz"))],
    ("GET", "/v1/camps"): [(LISTED, lambda w: Call("GET", "/v1/camps"))],
    # Login is public and every caller gets the same 401 for wrong credentials.
    ("POST", "/v1/auth/login"): [
        (
            EVERYONE(ROLES, 401),
            lambda w: Call("POST", "/v1/auth/login", json={"username": "x", "password": "wrong"}),
        )
    ],
    # Logout revokes the caller's token, so the harness runs it last (see LAST).
    ("POST", "/v1/auth/logout"): [
        (
            {**dict.fromkeys(ROLES, 204), **_UNAUTHENTICATED},
            lambda w: Call("POST", "/v1/auth/logout"),
        )
    ],
    ("POST", "/v1/camps"): [
        (
            {**ADMIN_ONLY, "admin": 201},
            lambda w: Call(
                "POST", "/v1/camps", json={"id": f"c-{uuid.uuid4().hex[:8]}", "name": "x"}
            ),
        )
    ],
    ("GET", "/v1/camps/{camp_id}"): [(READ, lambda w: Call("GET", f"/v1/camps/{w.camp_b}"))],
    ("GET", "/v1/camps/{camp_id}/stats"): [
        (READ, lambda w: Call("GET", f"/v1/camps/{w.camp_b}/stats"))
    ],
    ("GET", "/v1/households"): [
        (READ, lambda w: Call("GET", "/v1/households", {"camp": w.camp_b})),
        (PII_READ, lambda w: Call("GET", "/v1/households", {"camp": w.camp_b, "q": "Canarygul"})),
    ],
    ("GET", "/v1/households/{household_id}"): [
        (READ, lambda w: Call("GET", f"/v1/households/{w.household}"))
    ],
    ("GET", "/v1/households/{household_id}/history"): [
        (READ, lambda w: Call("GET", f"/v1/households/{w.household}/history"))
    ],
    ("GET", "/v1/persons"): [
        (READ, lambda w: Call("GET", "/v1/persons", {"camp": w.camp_b})),
        (PII_READ, lambda w: Call("GET", "/v1/persons", {"camp": w.camp_b, "q": "Canaryzai"})),
    ],
    ("GET", "/v1/persons/{person_id}"): [(READ, lambda w: Call("GET", f"/v1/persons/{w.person}"))],
    ("GET", "/v1/persons/{person_id}/history"): [
        (READ, lambda w: Call("GET", f"/v1/persons/{w.person}/history"))
    ],
    ("GET", "/v1/conflicts"): [(READ, lambda w: Call("GET", "/v1/conflicts", {"camp": w.camp_b}))],
    ("GET", "/v1/conflicts/{conflict_id}"): [
        (READ, lambda w: Call("GET", f"/v1/conflicts/{w.conflict}"))
    ],
    ("POST", "/v1/conflicts/{conflict_id}/resolve"): [
        (
            STAFF_WRITE,
            lambda w: Call(
                "POST", f"/v1/conflicts/{w.fresh_conflict()}/resolve", json={"choice": "current"}
            ),
        )
    ],
    ("GET", "/v1/services"): [(READ, lambda w: Call("GET", "/v1/services", {"camp": w.camp_b}))],
    ("GET", "/v1/referrals"): [(READ, lambda w: Call("GET", "/v1/referrals", {"camp": w.camp_b}))],
    ("GET", "/v1/flags"): [(READ, lambda w: Call("GET", "/v1/flags", {"camp": w.camp_b}))],
    ("POST", "/v1/flags/{flag_id}/resolve"): [
        (
            STAFF_WRITE,
            lambda w: Call(
                "POST", f"/v1/flags/{w.fresh_flag()}/resolve", json={"resolution": "dismissed"}
            ),
        )
    ],
    ("POST", "/v1/exports"): [
        (READ, lambda w: Call("POST", "/v1/exports", json={"camp": w.camp_b, "purpose": PURPOSE})),
        (
            PII_EXPORT,
            lambda w: Call(
                "POST",
                "/v1/exports",
                json={"camp": w.camp_b, "purpose": PURPOSE, "columns": ["head_given_name"]},
            ),
        ),
    ],
    ("GET", "/v1/audit"): [(ADMIN_ONLY, lambda w: Call("GET", "/v1/audit"))],
    # Users: admins revoke tokens, disable and enable other users.
    ("GET", "/v1/users"): [(ADMIN_ONLY, lambda w: Call("GET", "/v1/users"))],
    ("POST", "/v1/users/{username}/revoke-tokens"): [
        (ADMIN_ONLY, lambda w: Call("POST", f"/v1/users/{w.fresh_user()}/revoke-tokens"))
    ],
    ("POST", "/v1/users/{username}/disable"): [
        (ADMIN_ONLY, lambda w: Call("POST", f"/v1/users/{w.fresh_user()}/disable"))
    ],
    ("POST", "/v1/users/{username}/enable"): [
        (ADMIN_ONLY, lambda w: Call("POST", f"/v1/users/{w.fresh_user()}/enable"))
    ],
    # Enrolment, keys and devices (server-sync).
    ("POST", "/v1/camps/{camp_id}/enrollment-codes"): [
        (
            {**ADMIN_ONLY, "admin": 201},
            lambda w: Call("POST", f"/v1/camps/{w.camp_b}/enrollment-codes"),
        )
    ],
    ("POST", "/v1/devices/enroll"): [(EVERYONE(ROLES, 400), _enrolment)],
    ("GET", "/v1/keys"): [(PUBLIC, lambda w: Call("GET", "/v1/keys"))],
    ("GET", "/v1/devices"): [(READ, lambda w: Call("GET", "/v1/devices", {"camp": w.camp_b}))],
    ("POST", "/v1/devices/{device_id}/revoke"): [
        (STAFF_WRITE, lambda w: Call("POST", f"/v1/devices/{w.fresh_device()}/revoke"))
    ],
    # Sync (server-sync): tablets authenticate with their keys; user tokens confer nothing.
    ("PUT", "/v1/sync/batches/{batch_id}"): [
        (
            EVERYONE(ROLES, 400),
            lambda w: Call("PUT", f"/v1/sync/batches/{uuid.uuid4()}", content=b"not an envelope"),
        )
    ],
    ("GET", "/v1/sync/batches/{batch_id}"): [
        (DEVICE_ONLY, lambda w: Call("GET", f"/v1/sync/batches/{uuid.uuid4()}"))
    ],
    ("POST", "/v1/sync/challenge"): [
        (
            PUBLIC,
            lambda w: Call("POST", "/v1/sync/challenge", json={"device_id": str(w.fresh_device())}),
        )
    ],
    ("POST", "/v1/sync/token"): [
        (
            EVERYONE(ROLES, 401),
            lambda w: Call(
                "POST",
                "/v1/sync/token",
                json={"device_id": str(w.fresh_device()), "challenge": "x", "signature": _KEY},
            ),
        )
    ],
    ("GET", "/v1/sync/changes"): [(DEVICE_ONLY, lambda w: Call("GET", "/v1/sync/changes"))],
}


def _routes() -> set[tuple[str, str]]:
    return {
        (method, route.path)
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }


def test_every_route_has_a_row_in_the_matrix() -> None:
    missing = sorted(_routes() - set(MATRIX))
    stale = sorted(set(MATRIX) - _routes())
    assert not missing, f"routes without an authorisation matrix row: {missing}"
    assert not stale, f"matrix rows for routes that no longer exist: {stale}"
    for calls in MATRIX.values():
        for expect, _ in calls:
            assert set(expect) == set(ROLES)


@pytest.fixture
def world(client: TestClient, db: Engine) -> World:
    camp_a, camp_b = make_camp(db), make_camp(db)
    household = make_household(db, camp_b, needs=["food"], phone="+93799000111")
    person = make_person(
        db,
        camp_b,
        household,
        given_name="Canarygul",
        family_name="Canaryzai",
        date_of_birth="1987-06-05",
        document_type="tazkira",
        document_number="CANARY-0042",
        relationship_to_head="head",
    )
    with write_session(db) as session:
        commit_server_edit(
            session=session,
            entity=Entity.HOUSEHOLD,
            entity_id=household,
            fields={"head_person_id": str(person)},
            actor="test",
        )
    _, conflict = make_conflict(db, camp_b, household, current="Canarygul", incoming="Canaryjan")
    make_service(db, camp_b, household, delivered_at=dt.datetime.now(dt.UTC))
    make_service(db, camp_b, household)
    make_referral(db, camp_b, household, person_id=person)
    make_device(db, camp_b)
    [flag] = flags_of(db, household)
    world = World(db, camp_a, camp_b, household, person, conflict, flag)
    pii = ["pii:read", "pii:export"]
    world.tokens = {
        "admin": make_user(db, "admin", scopes=["pii:export"]),
        "coordinator_same": make_user(db, "coordinator", [camp_b]),
        "coordinator_other": make_user(db, "coordinator", [camp_a]),
        "integrator": make_user(db, "integrator", [camp_b]),
        "integrator_pii": make_user(db, "integrator", [camp_b], scopes=pii),
        "integrator_other": make_user(db, "integrator", [camp_a], scopes=pii),
        "revoked_token": make_user(db, "admin", scopes=pii),
        "revoked_device": _revoked_device_token(client, db, camp_b),
        "anonymous": None,
    }
    with Session(db) as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.token_hash == hash_token(str(world.tokens["revoked_token"])))
            .values(revoked_at=dt.datetime.now(dt.UTC))
        )
        session.commit()
    return world


def _revoked_device_token(client: TestClient, db: Engine, camp: str) -> str:
    tablet = make_tablet(client, db, camp)
    token = tablet.token()
    admin = make_user(db, "admin")
    revoked = client.post(f"/v1/devices/{tablet.device_id}/revoke", headers=bearer(admin))
    assert revoked.status_code == 200, revoked.text
    return str(token)


def _hidden_from(role: str, path: str, world: World) -> tuple[str, ...]:
    """What an allowed answer must still not hold for this caller."""
    if role in {"coordinator_other", "integrator_other"}:
        return world.secrets  # camp B does not exist for them
    if role == "integrator" or path == "/v1/audit":
        return PERSONAL_CANARIES  # no personal data without the scope, none in the audit log
    return ()


@pytest.mark.parametrize("role", ROLES)
def test_authorisation_matrix(client: TestClient, world: World, role: str) -> None:
    token = world.tokens[role]
    headers = bearer(token) if token else {}
    failures = []
    for (method, path), calls in sorted(
        MATRIX.items(), key=lambda item: (item[0] in LAST, item[0])
    ):
        for expect, build in calls:
            call = build(world)
            extra = {"json": call.json} if call.content is None else {"content": call.content}
            if call.content is not None:
                extra["headers"] = {**headers, "Content-Type": "application/octet-stream"}
            response = client.request(
                call.method, call.url, params=call.params, **({"headers": headers} | extra)
            )
            cell = f"{role}: {method} {path} {call.params or ''}"
            wanted = expect[role]
            if response.status_code != wanted:
                failures.append(f"{cell}: {response.status_code}, expected {wanted}")
                continue
            body = response.text
            if wanted >= 400:
                error = response.json()
                if set(error) != {"error"} or set(error["error"]) != {"code", "message", "details"}:
                    failures.append(f"{cell}: not the error body")
                leaked = [s for s in world.secrets if s in body]
                if leaked:
                    failures.append(f"{cell}: forbidden answer leaks {leaked}")
            else:
                leaked = [s for s in _hidden_from(role, path, world) if s in body]
                if leaked:
                    failures.append(f"{cell}: allowed answer leaks {leaked}")
    assert not failures, "\n".join(failures)
