"""CSV exports: a filtered set of households or people, with a stated purpose, audited.

The export is decided and audited before a byte leaves: the caller's scope is checked, the rows
are counted, and the audit entry (caller, purpose, filters, columns, row count) is committed.
The rows then stream from a server-side cursor in the same database snapshot as the count
(REPEATABLE READ on PostgreSQL; SQLite's read transaction is a snapshot), so memory stays
constant and the audited count is the number of rows sent.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from pydantic import JsonValue
from sqlalchemy import ColumnElement, Connection, CursorResult, Engine, Select, func, select
from sqlmodel import Session

from api.audit import service as audit
from api.errors import Forbidden
from api.exports.columns import HEAD, HOUSEHOLD_COLUMNS, PERSON_COLUMNS, ExportColumn
from api.exports.pseudonyms import pseudonym, pseudonym_key
from api.exports.schemas import ExportRequest, HouseholdExport
from api.households import service as households
from api.households.schemas import HouseholdFilters, PersonFilters
from api.households.views import HOUSEHOLD, PERSON
from api.principal import Principal, Scope

CHUNK_ROWS: Final = 500
# Cells a spreadsheet would run as a formula (CSV injection): such text gets a leading quote.
_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r", "\n")
_BOM: Final = "\ufeff"  # spreadsheets then read local-script names as UTF-8


def safe_cell(value: Any) -> Any:
    """A CSV cell: lists joined with ``;``, text that could be a formula defused."""
    if value is None:
        return ""
    if isinstance(value, list):
        value = ";".join(str(v) for v in value)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date | uuid.UUID):
        return str(value)
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _choose_columns(principal: Principal, request: ExportRequest) -> list[ExportColumn]:
    catalogue = HOUSEHOLD_COLUMNS if isinstance(request, HouseholdExport) else PERSON_COLUMNS
    names = list(dict.fromkeys(request.columns)) or [
        name for name, column in catalogue.items() if not column.personal
    ]
    columns = [catalogue[name] for name in names]
    personal: list[JsonValue] = [c.name for c in columns if c.personal]
    if personal and not principal.exports_pii:
        raise Forbidden(
            "personal columns need the pii:export scope",
            {"required": [Scope.PII_EXPORT.value], "columns": personal},
        )
    return columns


def _query(
    session: Session,
    principal: Principal,
    request: ExportRequest,
    columns: Sequence[ExportColumn],
    today: dt.date,
) -> Select[Any]:
    expressions = [c.expression(today) for c in columns]
    if isinstance(request, HouseholdExport):
        filters = HouseholdFilters(camp=request.camp, **request.filters.model_dump(mode="json"))
        conditions: list[ColumnElement[bool]] = households.household_conditions(
            session, principal, filters
        )
        source: Any = HOUSEHOLD
        if any(c.needs_head for c in columns):
            source = HOUSEHOLD.outerjoin(HEAD, HEAD.c.id == HOUSEHOLD.c.head_person_id)
        return select(*expressions).select_from(source).where(*conditions).order_by(HOUSEHOLD.c.id)
    person_filters = PersonFilters(camp=request.camp, **request.filters.model_dump(mode="json"))
    conditions = households.person_conditions(session, principal, person_filters)
    return select(*expressions).select_from(PERSON).where(*conditions).order_by(PERSON.c.id)


@dataclass
class Export:
    """A decided, audited export: its file name, row count and the CSV to stream."""

    filename: str
    rows: int
    audit_id: int
    _connection: Connection
    _query: Select[Any]
    _columns: Sequence[ExportColumn]
    _key: bytes | None
    _lock: threading.Lock
    _result: CursorResult[Any] | None = None

    def chunks(self) -> Iterator[bytes]:
        """The CSV, a few hundred rows per chunk; the connection closes at the end."""
        try:
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\r\n")
            buffer.write(_BOM)
            writer.writerow([c.name for c in self._columns])
            with self._lock:
                self._result = self._connection.execution_options(
                    stream_results=True, yield_per=CHUNK_ROWS
                ).execute(self._query)
            while True:
                with self._lock:
                    batch = self._result.fetchmany(CHUNK_ROWS)
                for row in batch:
                    writer.writerow(
                        [self._cell(c, v) for c, v in zip(self._columns, row, strict=True)]
                    )
                if buffer.tell():
                    yield buffer.getvalue().encode()
                    buffer.seek(0)
                    buffer.truncate()
                if not batch:
                    return
        finally:
            self.close()

    def _cell(self, column: ExportColumn, value: Any) -> Any:
        if column.pseudonymise and self._key is not None and value is not None:
            return pseudonym(self._key, column.pseudonymise, value)
        return safe_cell(value)

    def close(self) -> None:
        """Release the snapshot; safe to call twice and from another thread."""
        with self._lock:
            if self._result is not None:
                self._result.close()  # the server-side cursor, if the client left early
            if not self._connection.closed:
                self._connection.close()


def start_export(
    *,
    engine: Engine,
    session: Session,
    principal: Principal,
    request: ExportRequest,
    today: dt.date,
) -> Export:
    """Check, count and audit an export; return it ready to stream."""
    columns = _choose_columns(principal, request)
    query = _query(session, principal, request, columns, today)
    key = None if principal.exports_pii else pseudonym_key(session)
    connection = engine.connect()
    try:
        if engine.dialect.name == "postgresql":
            connection = connection.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        connection.begin()
        count = int(
            connection.execute(select(func.count()).select_from(query.subquery())).scalar_one()
        )
        entry = audit.record(
            session,
            principal,
            "export.create",
            camp_id=request.camp,
            entity=request.entity,
            details={
                "purpose": request.purpose,
                "filters": request.filters.model_dump(mode="json", exclude_defaults=True),
                "columns": [c.name for c in columns],
                "personal": any(c.personal for c in columns),
                "pseudonymous_ids": key is not None,
                "rows": count,
            },
        )
        session.commit()
    except BaseException:
        connection.close()
        raise
    filename = f"campsync-{request.camp}-{request.entity}s-{today:%Y%m%d}.csv"
    return Export(
        filename, count, int(entry.id or 0), connection, query, columns, key, threading.Lock()
    )
