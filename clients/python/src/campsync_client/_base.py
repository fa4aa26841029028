"""What a tablet does without a network: register, edit, record, read, search, export.

:class:`TabletBase` holds it once for :class:`~campsync_client.Tablet` and
:class:`~campsync_client.AsyncTablet`; they add only enrolment, opening and sync.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from campsync_sync import (
    DeleteOp,
    Entity,
    EventState,
    Operation,
    RecordState,
    ReferralOp,
    Rejected,
    ServiceOp,
    VoidOp,
    name_keys,
    normalize_operation,
    similarity,
    uuid7,
)
from campsync_sync.fields import DELETE_REASONS
from pydantic import ValidationError as PydanticError

from campsync_client._edits import (
    clean_fields,
    household_of,
    patch,
    person_of,
    referral_of,
    service_of,
    set_patch,
)
from campsync_client._errors import RecordNotFound, StoreError, ValidationError, Wiped
from campsync_client._models import (
    EditOutcome,
    Household,
    Person,
    Referral,
    ServiceDelivery,
    TabletStatus,
)
from campsync_client._replica import NAME_FIELDS, Replica

__all__ = ["TabletBase"]

MAX_QUERY: Final = 200
_ISSUES: Final = ("conflict", "flagged", "rejected")

Id = uuid.UUID | str


def _id(value: Id, what: str = "id") -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValidationError(what, "invalid_format", f"{what}: must be a UUID") from None


def _event(op: ServiceOp | ReferralOp | VoidOp) -> Operation:
    """Check an event with the protocol's own rules, as the server will."""
    try:
        return normalize_operation(op)
    except Rejected as exc:
        field = exc.detail.split(":", 1)[0]
        raise ValidationError(field, exc.reason.value, exc.detail) from None


def _pydantic(exc: PydanticError) -> ValidationError:
    # pydantic's own message would quote the input value: keep only where and what rule.
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "value"
    return ValidationError(field, first["type"], f"{field}: {first['msg']}")


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


class TabletBase:
    """Local registration, reading and export on an open tablet store."""

    def __init__(self, replica: Replica, server_url: str) -> None:
        self._replica: Replica | None = replica
        self._server_url = server_url
        self._wiped = False

    # ------------------------------------------------------------------ state

    @property
    def _r(self) -> Replica:
        if self._wiped:
            raise Wiped
        if self._replica is None:
            raise StoreError("this tablet is closed")
        return self._replica

    def _mark_wiped(self) -> None:
        self._wiped = True
        self._replica = None

    @property
    def device_id(self) -> uuid.UUID:
        """This tablet's device id, given by the server at enrolment."""
        return self._r.identity.device_id

    @property
    def camp_id(self) -> str:
        """The camp this tablet is enrolled in; it holds and syncs that camp's records only."""
        return self._r.identity.camp_id

    @property
    def server_url(self) -> str:
        """The server this tablet syncs with."""
        return self._server_url

    @property
    def wiped(self) -> bool:
        """Whether the server revoked this tablet and it wiped itself."""
        return self._wiped

    def change_pin(self, new_pin: str) -> None:
        """Protect the store with a new PIN from now on.

        Raises:
            ValidationError: when the new PIN is too short or too long.
        """
        self._r.store.change_pin(new_pin)

    # ------------------------------------------------------------------ helpers

    def _live(self, record_id: Id, entity: Entity) -> RecordState:
        rid = _id(record_id)
        row = self._r.row(rid)
        view = None if row is None else row.view
        if (
            row is None
            or row.entity != entity
            or not isinstance(view, RecordState)
            or view.is_deleted
            or view.erased
        ):
            raise RecordNotFound(entity.value, rid)
        return view

    def _commit(self, ops: Sequence[Operation | None]) -> None:
        todo = [op for op in ops if op is not None]
        if todo:
            self._r.commit(todo)

    # ------------------------------------------------------------------ registering

    def register_household(
        self,
        head: Mapping[str, Any],
        members: Iterable[Mapping[str, Any]] = (),
        **household_fields: Any,
    ) -> Household:
        """Register a household, its head and its other members, in one step.

        Args:
            head: the head's person fields (``given_name``, ``family_name``, ``sex``,
                ``birth_year``...); ``relationship_to_head`` defaults to ``"head"``.
            members: the other members' person fields.
            **household_fields: household fields (``arrival_date``, ``arrival_type``,
                ``needs={"food", "shelter"}``...). Set fields take any collection.

        Returns:
            The new household, as the tablet now sees it.

        Raises:
            ValidationError: at once, for an unknown field or an invalid value.
        """
        reserved = frozenset({"household_id"})
        people = [clean_fields(Entity.PERSON, head, reserved=reserved)]
        people += [clean_fields(Entity.PERSON, m, reserved=reserved) for m in members]
        fields, sets = clean_fields(
            Entity.HOUSEHOLD, household_fields, reserved=frozenset({"head_person_id"})
        )
        household_id, ids = uuid7(), [uuid7() for _ in people]
        people[0][0].setdefault("relationship_to_head", "head")
        hlc = self._r.now()
        fields["head_person_id"] = str(ids[0])
        ops = [patch(Entity.HOUSEHOLD, household_id, None, hlc, fields, sets)]
        for person_id, (values, person_sets) in zip(ids, people, strict=True):
            values["household_id"] = str(household_id)
            ops.append(patch(Entity.PERSON, person_id, None, hlc, values, person_sets))
        self._commit(ops)
        return self.household(household_id)

    def add_person(self, household_id: Id, **fields: Any) -> Person:
        """Add a member to a household.

        Raises:
            RecordNotFound: when the household is not live on this tablet.
            ValidationError: for an unknown field or an invalid value.
        """
        hid = _id(household_id)
        self._live(hid, Entity.HOUSEHOLD)
        values, sets = clean_fields(Entity.PERSON, fields, reserved=frozenset({"household_id"}))
        values["household_id"] = str(hid)
        person_id = uuid7()
        self._commit([patch(Entity.PERSON, person_id, None, self._r.now(), values, sets)])
        return self.person(person_id)

    def update_household(self, household_id: Id, **fields: Any) -> Household:
        """Change household fields; a set field given here replaces the whole set.

        Only values that differ are written. Each write carries the clock of the value this
        tablet saw, so the server merges it with concurrent edits by the shared rules.

        Raises:
            RecordNotFound: when the household is not live on this tablet.
            ValidationError: for an unknown field or an invalid value.
        """
        hid = _id(household_id)
        current = self._live(hid, Entity.HOUSEHOLD)
        values, sets = clean_fields(Entity.HOUSEHOLD, fields)
        if "head_person_id" in values and values["head_person_id"] is not None:
            self._live(values["head_person_id"], Entity.PERSON)
        self._commit([patch(Entity.HOUSEHOLD, hid, current, self._r.now(), values, sets)])
        return self.household(hid)

    def update_person(self, person_id: Id, **fields: Any) -> Person:
        """Change person fields (``household_id`` moves the person to another household).

        Raises:
            RecordNotFound: when the person, or the household moved to, is not live here.
            ValidationError: for an unknown field or an invalid value.
        """
        pid = _id(person_id)
        current = self._live(pid, Entity.PERSON)
        values, sets = clean_fields(Entity.PERSON, fields)
        if "household_id" in values:
            self._live(values["household_id"], Entity.HOUSEHOLD)
        self._commit([patch(Entity.PERSON, pid, current, self._r.now(), values, sets)])
        return self.person(pid)

    def add_needs(self, household_id: Id, *needs: str) -> Household:
        """Add needs to a household (a concurrent addition elsewhere never conflicts)."""
        return self._set(household_id, "needs", needs, present=True)

    def remove_needs(self, household_id: Id, *needs: str) -> Household:
        """Remove needs from a household."""
        return self._set(household_id, "needs", needs, present=False)

    def _set(
        self, household_id: Id, name: str, elements: Iterable[str], *, present: bool
    ) -> Household:
        hid = _id(household_id)
        current = self._live(hid, Entity.HOUSEHOLD)
        op = set_patch(
            Entity.HOUSEHOLD, hid, current, self._r.now(), name, elements, present=present
        )
        self._commit([op])
        return self.household(hid)

    def delete_household(self, household_id: Id, reason: str) -> None:
        """Delete a household and its members (tombstones; a delete wins over concurrent edits).

        Args:
            household_id: the household.
            reason: ``duplicate``, ``registered_in_error``, ``withdrawn`` or ``other``.

        Raises:
            RecordNotFound: when the household is not live on this tablet.
            ValidationError: for another reason.
        """
        hid = _id(household_id)
        current = self._live(hid, Entity.HOUSEHOLD)
        self._check_reason(reason)
        hlc = self._r.now()
        ops: list[Operation | None] = [self._delete(Entity.HOUSEHOLD, hid, current, hlc, reason)]
        for person_id, state in self._r.views(Entity.PERSON, household_id=hid):
            assert isinstance(state, RecordState)  # noqa: S101 (persons are registry records)
            ops.append(self._delete(Entity.PERSON, person_id, state, hlc, reason))
        self._commit(ops)

    def delete_person(self, person_id: Id, reason: str) -> None:
        """Delete one person (a tombstone), e.g. registered twice.

        Raises:
            RecordNotFound: when the person is not live on this tablet.
            ValidationError: for an unknown reason.
        """
        pid = _id(person_id)
        current = self._live(pid, Entity.PERSON)
        self._check_reason(reason)
        self._commit([self._delete(Entity.PERSON, pid, current, self._r.now(), reason)])

    @staticmethod
    def _check_reason(reason: str) -> None:
        if reason not in DELETE_REASONS:
            raise ValidationError(
                "reason", "invalid_choice", f"reason: must be one of {', '.join(DELETE_REASONS)}"
            )

    @staticmethod
    def _delete(
        entity: Entity, record_id: uuid.UUID, state: RecordState, hlc: str, reason: str
    ) -> DeleteOp:
        return DeleteOp(
            op_id=uuid7(),
            entity=entity.value,
            id=record_id,
            hlc=hlc,
            reason=reason,
            base=dict(state.clocks),
        )

    # ------------------------------------------------------------------ events

    def _member(self, household_id: uuid.UUID, person_id: Id | None) -> uuid.UUID | None:
        if person_id is None:
            return None
        pid = _id(person_id, "person_id")
        person = self._live(pid, Entity.PERSON)
        if person.values.get("household_id") != str(household_id):
            raise ValidationError("person_id", "not_a_member", "person_id: not in this household")
        return pid

    def record_service(
        self,
        household_id: Id,
        service: str,
        quantity: float = 1,
        unit: str | None = None,
        person_id: Id | None = None,
        *,
        delivered_at: dt.datetime | None = None,
    ) -> ServiceDelivery:
        """Record a service delivered to a household (insert-only).

        A second delivery of the same service inside its entitlement window is kept and
        flagged by the server as a possible double distribution, never dropped.

        Args:
            household_id: the household served.
            service: ``food_ration``, ``shelter_kit``, ``tent``, ``hygiene_kit``...
            quantity: how much (greater than 0).
            unit: the unit of ``quantity``, if any (``kg``, ``AFN``...).
            person_id: the member served, when it was one person.
            delivered_at: when; now (by the tablet's clock) by default.

        Raises:
            RecordNotFound: when the household is not live on this tablet.
            ValidationError: for an unknown service or an invalid quantity or unit.
        """
        hid = _id(household_id)
        self._live(hid, Entity.HOUSEHOLD)
        try:
            op = ServiceOp(
                op_id=uuid7(),
                id=uuid7(),
                hlc=self._r.now(),
                household_id=hid,
                person_id=self._member(hid, person_id),
                service=service,
                quantity=quantity,
                unit=unit,
                delivered_at=delivered_at or self._r.wall_time(),
            )
        except PydanticError as exc:
            raise _pydantic(exc) from None
        self._commit([_event(op)])
        return self.service(op.id)

    def record_referral(
        self,
        household_id: Id,
        category: str,
        urgency: str,
        *,
        person_id: Id | None = None,
        status: str = "open",
    ) -> Referral:
        """Record a referral (``health``, ``protection``, ``nutrition`` or ``other``).

        Args:
            household_id: the household referred.
            category: ``health``, ``protection``, ``nutrition`` or ``other``.
            urgency: ``low``, ``medium``, ``high`` or ``emergency``.
            person_id: the member referred, when it is one person.
            status: ``open``, ``in_progress`` or ``closed``.

        Raises:
            RecordNotFound: when the household is not live on this tablet.
            ValidationError: for an unknown category, urgency or status.
        """
        hid = _id(household_id)
        self._live(hid, Entity.HOUSEHOLD)
        try:
            op = ReferralOp(
                op_id=uuid7(),
                id=uuid7(),
                hlc=self._r.now(),
                household_id=hid,
                person_id=self._member(hid, person_id),
                category=category,
                urgency=urgency,
                status=status,
            )
        except PydanticError as exc:
            raise _pydantic(exc) from None
        self._commit([_event(op)])
        return self.referral(op.id)

    def void_service(self, service_id: Id, reason: str) -> ServiceDelivery:
        """Cancel a service recorded in error; it stays, marked void.

        Args:
            service_id: the delivery.
            reason: ``recorded_in_error``, ``duplicate``, ``not_delivered`` or ``other``.
        """
        sid = _id(service_id)
        self.service(sid)
        try:
            op = VoidOp(
                op_id=uuid7(), entity="service_delivery", id=sid, hlc=self._r.now(), reason=reason
            )
        except PydanticError as exc:
            raise _pydantic(exc) from None
        self._commit([_event(op)])
        return self.service(sid)

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
        hid = _id(household_id)
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
        pid = _id(person_id)
        state = self._live(pid, Entity.PERSON)
        return person_of(pid, state, pending=bool(self._r.pending_ids([pid])))

    def _event_state(self, event_id: Id, entity: Entity) -> tuple[EventState, bool]:
        eid = _id(event_id)
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
        hid = None if household_id is None else _id(household_id)
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
        hid = None if household_id is None else _id(household_id)
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
        return self._r.pending_count()

    def conflicts(self, *, include_applied: bool = False) -> list[EditOutcome]:
        """What the server did with this tablet's edits, newest first.

        By default only the operations that need a look: conflicts (kept for coordinator
        review), flagged ones (e.g. a possible double distribution) and rejected ones.
        """
        rows = self._r.outcomes(None if include_applied else _ISSUES)
        return [_outcome(*row) for row in rows]

    def status(self) -> TabletStatus:
        """Identity, queue and sync position, with no personal data."""
        r = self._r
        return TabletStatus(
            device_id=r.identity.device_id,
            camp_id=r.identity.camp_id,
            server_url=self._server_url,
            pending=r.pending_count(),
            sealed_batches=len(r.sealed_batches()),
            last_sync_at=r.last_sync_at(),
            cursor=r.cursor,
            open_issues=len(r.outcomes(_ISSUES)),
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
        while r.seal_next() is not None:
            pass
        written = []
        for batch in r.sealed_batches():
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
