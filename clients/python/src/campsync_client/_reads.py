"""Reading what the tablet holds: records, search, the queue and its outcomes, exports."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path
from typing import Final

from campsync_sync import NAME_FIELDS, Entity, EventState, RecordState, name_keys, similarity

from campsync_client import _outbox as outbox
from campsync_client._core import Core, Id, parse_id
from campsync_client._edits import household_of, person_of, referral_of, service_of
from campsync_client._errors import RecordNotFound, ValidationError
from campsync_client._models import (
    EditOutcome,
    Household,
    Person,
    Referral,
    ServiceDelivery,
    TabletStatus,
)

__all__ = ["Reads"]

MAX_QUERY: Final = 200
_ISSUES: Final = ("conflict", "flagged", "rejected")


def _outcome(
    op_id: str,
    batch_id: str,
    op: str,
    entity: str,
    record_id: str,
    outcome: str,
    reason: str | None,
    detail: str | None,
    conflicts: int,
    flags: int,
    at: str,
) -> EditOutcome:
    return EditOutcome(
        op_id=uuid.UUID(op_id),
        batch_id=uuid.UUID(batch_id),
        operation=op,
        entity=entity,
        record_id=uuid.UUID(record_id),
        outcome=outcome,
        reason=reason,
        detail=detail,
        conflicts=conflicts,
        flags=flags,
        at=dt.datetime.fromisoformat(at),
    )


class Reads(Core):
    """Reading, searching and exporting, without a network."""

    # ------------------------------------------------------------------ reading

    def households(self, *, include_deleted: bool = False) -> list[Household]:
        """Every household on this tablet (its camp), oldest first, with members."""
        r = self._r
        pending = r.pending_ids()
        members: dict[str, list[Person]] = {}
        for pid, state in r.views(Entity.PERSON):
            assert isinstance(state, RecordState)  # noqa: S101
            person = person_of(pid, state, pending=str(pid) in pending)
            members.setdefault(str(person.household_id), []).append(person)
        out = []
        for hid, state in r.views(Entity.HOUSEHOLD, live=not include_deleted):
            assert isinstance(state, RecordState)  # noqa: S101
            key = str(hid)
            out.append(household_of(hid, state, members.get(key, ()), pending=key in pending))
        return sorted(out, key=lambda h: h.id)

    def household(self, household_id: Id) -> Household:
        """One live household with its members.

        Raises:
            RecordNotFound: when there is no live household with that id here.
        """
        hid = parse_id(household_id)
        state = self._live(hid, Entity.HOUSEHOLD)
        people = self._r.views(Entity.PERSON, household_id=hid)
        pending = self._r.pending_ids([hid, *(pid for pid, _ in people)])
        members = [
            person_of(pid, s, pending=str(pid) in pending)
            for pid, s in people
            if isinstance(s, RecordState)
        ]
        return household_of(hid, state, members, pending=str(hid) in pending)

    def person(self, person_id: Id) -> Person:
        """One live person.

        Raises:
            RecordNotFound: when there is no live person with that id here.
        """
        pid = parse_id(person_id)
        state = self._live(pid, Entity.PERSON)
        return person_of(pid, state, pending=bool(self._r.pending_ids([pid])))

    def _event_state(self, event_id: Id, entity: Entity) -> tuple[EventState, bool]:
        eid = parse_id(event_id)
        row = self._r.row(eid)
        view = None if row is None else row.view
        if row is None or row.entity != entity or not isinstance(view, EventState):
            raise RecordNotFound(entity.value, eid)
        return view, bool(self._r.pending_ids([eid]))

    def service(self, service_id: Id) -> ServiceDelivery:
        """One service delivery.

        Raises:
            RecordNotFound: when there is none with that id here.
        """
        state, pending = self._event_state(service_id, Entity.SERVICE_DELIVERY)
        return service_of(state, pending=pending)

    def referral(self, referral_id: Id) -> Referral:
        """One referral.

        Raises:
            RecordNotFound: when there is none with that id here.
        """
        state, pending = self._event_state(referral_id, Entity.REFERRAL)
        return referral_of(state, pending=pending)

    def services(self, household_id: Id | None = None) -> list[ServiceDelivery]:
        """Service deliveries, of one household or all, in delivery order."""
        hid = None if household_id is None else parse_id(household_id)
        found = self._r.views(Entity.SERVICE_DELIVERY, household_id=hid)
        pending = self._r.pending_ids(None if hid is None else [eid for eid, _ in found])
        out = [
            service_of(s, pending=str(eid) in pending)
            for eid, s in found
            if isinstance(s, EventState)
        ]
        return sorted(out, key=lambda s: (s.delivered_at, s.id))

    def referrals(self, household_id: Id | None = None) -> list[Referral]:
        """Referrals, of one household or all."""
        hid = None if household_id is None else parse_id(household_id)
        found = self._r.views(Entity.REFERRAL, household_id=hid)
        pending = self._r.pending_ids(None if hid is None else [eid for eid, _ in found])
        out = [
            referral_of(s, pending=str(eid) in pending)
            for eid, s in found
            if isinstance(s, EventState)
        ]
        return sorted(out, key=lambda r: r.id)

    def search(self, text: str, *, limit: int = 20) -> list[Person]:
        """Find people by name, tolerant of transliteration, or by document number or phone.

        ``Mohammad``, ``Muhammad`` and ``Mohammed`` find each other (the keys of
        ``campsync_sync.names``); results are ranked best first. Names are looked up through
        blind-index tokens: the store holds no name in clear, not even for search.

        Raises:
            ValidationError: for a query longer than 200 characters.
        """
        if len(text) > MAX_QUERY:
            raise ValidationError("text", "too_long", f"text: at most {MAX_QUERY} characters")
        r = self._r
        compact = "".join(text.split())
        exact = {r.vault.token("doc", compact.upper()), r.vault.token("phone", compact.lstrip("+"))}
        tokens = {r.vault.token("name", key) for key in name_keys([text])}
        hits = r.lookup(tokens | exact)
        exact_hits = set(r.lookup(exact)) if compact else set()
        pending = r.pending_ids(uuid.UUID(pid) for pid in hits)
        ranked: list[tuple[float, Person]] = []
        for pid, _entity, state in r.views_of(hits):
            assert isinstance(state, RecordState)  # noqa: S101
            names = [state.values.get(f) for f in NAME_FIELDS]
            score = 2.0 if str(pid) in exact_hits else hits[str(pid)] + similarity(text, names)
            ranked.append((score, person_of(pid, state, pending=str(pid) in pending)))
        ranked.sort(key=lambda item: (-item[0], item[1].id))
        return [person for _, person in ranked[:limit]]

    # ------------------------------------------------------------------ sync bookkeeping

    def pending(self) -> int:
        """How many operations the server has not yet acknowledged."""
        return outbox.pending_count(self._r)

    def conflicts(self, *, include_applied: bool = False) -> list[EditOutcome]:
        """What the server did with this tablet's edits, newest first.

        By default only the operations that need a look: conflicts (kept for coordinator
        review), flagged ones (e.g. a possible double distribution) and rejected ones.
        """
        rows = outbox.outcomes(self._r, None if include_applied else _ISSUES)
        return [_outcome(*row) for row in rows]

    def status(self) -> TabletStatus:
        """Identity, queue and sync position, with no personal data."""
        r = self._r
        return TabletStatus(
            device_id=r.identity.device_id,
            camp_id=r.identity.camp_id,
            server_url=self._server_url,
            pending=outbox.pending_count(r),
            sealed_batches=len(outbox.sealed_batches(r)),
            last_sync_at=r.last_sync_at(),
            cursor=r.cursor,
            open_issues=len(outbox.outcomes(r, _ISSUES)),
        )

    def export_batches(self, directory: str | os.PathLike[str]) -> list[Path]:
        """Seal everything pending and write each unacknowledged batch to ``directory``.

        Each file is ``<batch_id>.batch``: a sealed, signed envelope that only the server can
        open, for carrying on a USB stick to ``campsync admin import-batches``. The batches stay
        queued: a later :meth:`sync` sends the very same bytes, so whichever arrives second is
        recognised and nothing is applied twice.

        Returns:
            The files written, in seq order.
        """
        r = self._r
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        while outbox.seal_next(r) is not None:
            pass
        written = []
        for batch in outbox.sealed_batches(r):
            path = target / f"{batch.batch_id}.batch"
            partial = target / f".{batch.batch_id}.batch.part"
            fd = os.open(partial, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(batch.envelope)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, path)
            written.append(path)
        return written
