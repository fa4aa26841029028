"""The state every tablet object shares: the open replica, its identity, and id parsing."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from campsync_sync import Entity, Operation, RecordState

from campsync_client._errors import RecordNotFound, StoreError, ValidationError, Wiped
from campsync_client._replica import Replica

__all__ = ["Core", "Id", "parse_id"]

Id = uuid.UUID | str


def parse_id(value: Id, what: str = "id") -> uuid.UUID:
    """A record id from a UUID or its text.

    Raises:
        ValidationError: when the text is not a UUID.
    """
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValidationError(what, "invalid_format", f"{what}: must be a UUID") from None


class Core:
    """An open tablet store, or a closed or wiped one."""

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
        rid = parse_id(record_id)
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
