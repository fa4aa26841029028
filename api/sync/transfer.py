"""Sneakernet: batches carried on a USB stick, imported with exactly the checks of a push."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from campsync_sync import EnvelopeError, ProtocolError, parse_envelope
from sqlalchemy import Engine

from api.config import Settings
from api.errors import DomainError
from api.sync.keys import Keyring
from api.sync.service import push_batch

SUFFIX = ".batch"


@dataclass(frozen=True)
class ImportResult:
    name: str
    status: str
    """``applied``, ``already applied`` or ``refused``."""
    detail: str


def _order(keyring: Keyring, path: Path) -> tuple[int, str, int, str]:
    # Each device's batches must land in seq order; unreadable files go first to be refused.
    try:
        header = parse_envelope(
            path.read_bytes(), deployment_id=keyring.current().deployment_id
        ).header
    except (EnvelopeError, OSError):
        return (0, "", 0, path.name)
    return (1, header.snd, header.seq, path.name)


def import_directory(*, engine: Engine, settings: Settings, directory: Path) -> list[ImportResult]:
    """Import every ``<batch_id>.batch`` file of ``directory``, each device's in seq order."""
    keyring = Keyring(engine, settings)
    files = sorted(directory.glob(f"*{SUFFIX}"), key=lambda p: _order(keyring, p))
    results = []
    for path in files:
        results.append(_import_one(engine, settings, keyring, path))
    return results


def _import_one(engine: Engine, settings: Settings, keyring: Keyring, path: Path) -> ImportResult:
    try:
        batch_id = uuid.UUID(path.name.removesuffix(SUFFIX))
    except ValueError:
        return ImportResult(path.name, "refused", "bad_request: the file name is not a batch id")
    try:
        data = path.read_bytes()
        if len(data) > settings.max_envelope_bytes:
            return ImportResult(path.name, "refused", "envelope_too_large: the file is too large")
        result = push_batch(
            engine=engine, settings=settings, keyring=keyring, batch_id=batch_id, data=data
        )
    except ProtocolError as exc:
        return ImportResult(path.name, "refused", f"{exc.code.value}: {exc}")
    except DomainError as exc:
        return ImportResult(path.name, "refused", f"{exc.code.value}: {exc.message}")
    receipt = result.receipt
    if result.replayed:
        return ImportResult(path.name, "already applied", f"seq {receipt.seq}")
    rejected = sum(1 for r in receipt.results if r.outcome.value == "rejected")
    return ImportResult(
        path.name,
        "applied",
        f"seq {receipt.seq}, {len(receipt.results)} operations, {rejected} rejected",
    )
