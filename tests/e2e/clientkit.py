"""Helpers for driving the reference client against a real server: admin calls, server state."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from campsync_client import RetryPolicy, Tablet, _crypto
from sqlalchemy import Engine, select
from sqlmodel import Session

from api.registry.models import Conflict, Household, Person, ServiceDelivery
from tests.factories import bearer, make_camp, make_user

PIN = "2468"
RETRY = RetryPolicy(attempts=5, base_delay=0.05, max_delay=0.5)
CHEAP_KDF = _crypto.KdfParams(memory_kib=64, iterations=1, lanes=1)

HOUSEHOLD_FIELDS = (
    "head_person_id",
    "arrival_type",
    "shelter_status",
    "crossing_point",
    "phone",
    "status",
)
PERSON_FIELDS = (
    "household_id",
    "given_name",
    "family_name",
    "father_name",
    "sex",
    "birth_year",
    "document_number",
    "status",
)


class Admin:
    """An admin of a live server, through its HTTP API."""

    def __init__(self, url: str, engine: Engine) -> None:
        self.url = url
        self.engine = engine
        self.http = httpx.Client(
            base_url=url, headers=bearer(make_user(engine, "admin")), timeout=30
        )
        self.tablets: list[Tablet] = []

    def camp(self) -> str:
        return make_camp(self.engine)

    def code(self, camp: str) -> dict[str, Any]:
        response = self.http.post(f"/v1/camps/{camp}/enrollment-codes", json={})
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def tablet(self, camp: str, path: Any, **kwargs: Any) -> Tablet:
        kwargs.setdefault("retry", RETRY)
        tablet = Tablet.enroll(self.url, self.code(camp)["code"], path, PIN, **kwargs)
        self.tablets.append(tablet)
        return tablet

    def revoke(self, device_id: uuid.UUID) -> None:
        response = self.http.post(f"/v1/devices/{device_id}/revoke")
        assert response.status_code == 200, response.text

    def close(self) -> None:
        for tablet in self.tablets:
            tablet.close()
        self.http.close()


def _plain(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, frozenset | set | list):
        return sorted(value)
    return value


def tablet_state(tablet: Tablet) -> dict[str, dict[str, Any]]:
    """Every live household and person of a tablet, as comparable values."""
    out: dict[str, dict[str, Any]] = {}
    for h in tablet.households():
        out[str(h.id)] = {f: _plain(getattr(h, f)) for f in HOUSEHOLD_FIELDS} | {
            "needs": sorted(h.needs),
            "vulnerabilities": sorted(h.vulnerabilities),
        }
        for p in h.members:
            out[str(p.id)] = {f: _plain(getattr(p, f)) for f in PERSON_FIELDS}
    for s in tablet.services():
        out[str(s.id)] = {
            "household_id": str(s.household_id),
            "service": s.service,
            "voided": s.voided,
        }
    return out


def server_state(engine: Engine, camp: str) -> dict[str, dict[str, Any]]:
    """The same view of the server's database."""
    out: dict[str, dict[str, Any]] = {}
    with Session(engine) as session:
        households = (
            session.execute(select(Household).where(Household.camp_id == camp)).scalars().all()
        )
        live = {h.id for h in households if not h.is_deleted}
        for h in households:
            if h.is_deleted:
                continue
            out[str(h.id)] = {f: _plain(getattr(h, f)) for f in HOUSEHOLD_FIELDS} | {
                "needs": sorted(h.needs),
                "vulnerabilities": sorted(h.vulnerabilities),
            }
        for p in session.execute(select(Person).where(Person.camp_id == camp)).scalars():
            if p.is_deleted or p.household_id not in live:
                continue
            out[str(p.id)] = {f: _plain(getattr(p, f)) for f in PERSON_FIELDS}
        for s in session.execute(
            select(ServiceDelivery).where(ServiceDelivery.camp_id == camp)
        ).scalars():
            out[str(s.id)] = {
                "household_id": str(s.household_id),
                "service": s.service,
                "voided": s.voided_hlc is not None,
            }
    return out


def conflicts(engine: Engine, camp: str) -> list[Conflict]:
    with Session(engine) as session:
        return list(session.execute(select(Conflict).where(Conflict.camp_id == camp)).scalars())
