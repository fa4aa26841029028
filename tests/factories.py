"""Typed builders for test data, with keyword defaults."""

from __future__ import annotations

import itertools

from sqlalchemy import Engine
from sqlmodel import Session

from api.camps import service as camp_service
from api.camps.schemas import CampCreate
from api.users import service as user_service

_names = itertools.count()


def make_camp(engine: Engine, camp_id: str | None = None, name: str | None = None) -> str:
    camp_id = camp_id or f"camp-{next(_names)}"
    with Session(engine) as session:
        camp_service.create_camp(
            session=session, data=CampCreate(id=camp_id, name=name or camp_id), actor="test"
        )
    return camp_id


def make_user(
    engine: Engine,
    role: str = "coordinator",
    camps: list[str] | None = None,
    *,
    scopes: list[str] | None = None,
    all_camps: bool = False,
    username: str | None = None,
) -> str:
    """Create a user; return their bearer token."""
    with Session(engine) as session:
        _, token = user_service.create_user(
            session=session,
            username=username or f"user{next(_names)}",
            role=role,
            camps=camps or [],
            all_camps=all_camps,
            scopes=scopes or [],
        )
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_code(client, engine: Engine, camp_id: str, **body: object) -> dict:  # type: ignore[no-untyped-def, type-arg]
    """An enrolment code for ``camp_id``, created through the API by a fresh admin."""
    admin = make_user(engine, "admin")
    response = client.post(
        f"/v1/camps/{camp_id}/enrollment-codes", json=body or None, headers=bearer(admin)
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def make_tablet(client, engine: Engine, camp_id: str | None = None):  # type: ignore[no-untyped-def]
    """An enrolled tablet (tests/synckit.py) in ``camp_id`` (a new camp by default)."""
    from tests.synckit import Tablet

    camp_id = camp_id or make_camp(engine)
    tablet = Tablet(client)
    tablet.enroll(make_code(client, engine, camp_id)["code"])
    return tablet
