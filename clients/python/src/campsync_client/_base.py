"""What a tablet does without a network: register, edit, record, read, search, export.

:class:`TabletBase` holds it once for :class:`~campsync_client.Tablet` and
:class:`~campsync_client.AsyncTablet`; they add only enrolment, opening and sync.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from campsync_sync import (
    DeleteOp,
    Entity,
    Operation,
    RecordState,
    ReferralOp,
    Rejected,
    ServiceOp,
    VoidOp,
    normalize_operation,
    uuid7,
)
from campsync_sync.fields import DELETE_REASONS
from pydantic import ValidationError as PydanticError

from campsync_client._core import Id, parse_id
from campsync_client._edits import clean_fields, patch, set_patch
from campsync_client._errors import ValidationError
from campsync_client._models import Household, Person, Referral, ServiceDelivery
from campsync_client._reads import Reads

__all__ = ["TabletBase"]


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


class TabletBase(Reads):
    """Local registration, editing, reading and export on an open tablet store."""

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
        hid = parse_id(household_id)
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
        hid = parse_id(household_id)
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
        pid = parse_id(person_id)
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
        hid = parse_id(household_id)
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
        hid = parse_id(household_id)
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
        pid = parse_id(person_id)
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
        pid = parse_id(person_id, "person_id")
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
        hid = parse_id(household_id)
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
        hid = parse_id(household_id)
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
        sid = parse_id(service_id)
        self.service(sid)
        try:
            op = VoidOp(
                op_id=uuid7(), entity="service_delivery", id=sid, hlc=self._r.now(), reason=reason
            )
        except PydanticError as exc:
            raise _pydantic(exc) from None
        self._commit([_event(op)])
        return self.service(sid)
