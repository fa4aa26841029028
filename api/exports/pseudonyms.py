"""Pseudonymous ids for exports without the personal-data scope.

A pseudonym is an HMAC-SHA256 of the record's id under a deployment secret kept in the
``server_meta`` table: the same household gets the same pseudonym in every export of the
deployment (so partners can join their files), and without the secret nobody can link a
pseudonym back to the id. The secret is created on first use.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from typing import Final

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from api.sync.models import ServerMeta

SERVER_META: Final[Table] = ServerMeta.__table__  # type: ignore[attr-defined]
KEY_NAME: Final = "export_pseudonym_key"
_PREFIX: Final = {"household": "hh", "person": "pp"}


def pseudonym_key(session: Session) -> bytes:
    """The deployment's pseudonym secret, created (race-free) the first time it is needed."""
    found = session.execute(
        select(SERVER_META.c.value).where(SERVER_META.c.name == KEY_NAME)
    ).scalar_one_or_none()
    if found is None:
        builder = (
            postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        )
        session.execute(
            builder(SERVER_META)
            .values(name=KEY_NAME, value=secrets.token_hex(32))
            .on_conflict_do_nothing(index_elements=[SERVER_META.c.name])
        )
        found = session.execute(
            select(SERVER_META.c.value).where(SERVER_META.c.name == KEY_NAME)
        ).scalar_one()
    return bytes.fromhex(found)


def pseudonym(key: bytes, entity: str, record_id: uuid.UUID) -> str:
    """``hh-`` or ``pp-`` and 24 base32 characters (120 bits): stable, not reversible."""
    digest = hmac.new(key, f"{entity}:{record_id}".encode(), hashlib.sha256).digest()[:15]
    return f"{_PREFIX[entity]}-{base64.b32encode(digest).decode().lower()}"
