"""The outbox: queued operations sealed into batches, and receipts recorded.

::

    PENDING (batch_id NULL) ──seal──▶ SEALED (batch row, envelope bytes) ──receipt──▶ ACKED
        ──pull past commit_seq──▶ retired (plaintext deleted, outcome kept; see _replica)

Each arrow is one store transaction. A batch's envelope is persisted before it is sent, so a
retry sends identical bytes; its plaintext operations stay (sealed) until acknowledged, so a
``key_destroyed`` answer is met by sealing the same batch id and seq to a current key.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from campsync_sync import Batch, EnvelopeHeader, OpResult, Outcome, Receipt, seal, uuid7

from campsync_client._identity import TransportKey, pick_transport_key
from campsync_client._store import utcnow

if TYPE_CHECKING:
    from campsync_client._replica import Replica

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_OPS",
    "SealedBatch",
    "apply_receipt",
    "outcomes",
    "pending_count",
    "reseal",
    "seal_next",
    "sealed_batches",
    "unsealed_count",
]

MAX_BATCH_OPS: Final = 500
MAX_BATCH_BYTES: Final = 1024 * 1024
MAX_OUTCOMES: Final = 20_000


@dataclass(frozen=True, slots=True)
class SealedBatch:
    """A batch sealed and persisted, ready to send (again)."""

    batch_id: uuid.UUID
    seq: int
    envelope: bytes
    ops: int


def pending_count(replica: Replica) -> int:
    """Operations not yet acknowledged by the server."""
    (count,) = replica.conn.execute("SELECT count(*) FROM outbox WHERE acked = 0").fetchone()
    return int(count)


def unsealed_count(replica: Replica) -> int:
    """Operations not yet sealed into a batch."""
    (count,) = replica.conn.execute("SELECT count(*) FROM outbox WHERE batch_id IS NULL").fetchone()
    return int(count)


def sealed_batches(replica: Replica) -> list[SealedBatch]:
    """Batches sealed and not yet acknowledged, in seq order."""
    rows = replica.conn.execute(
        "SELECT batch_id, seq, envelope, ops FROM batch WHERE acked = 0 ORDER BY seq"
    ).fetchall()
    return [SealedBatch(uuid.UUID(b), s, bytes(e), n) for b, s, e, n in rows]


def _seal_batch(replica: Replica, batch: Batch, key: TransportKey) -> bytes:
    identity = replica.identity
    header = EnvelopeHeader(
        typ="push",
        aud=identity.deployment_id,
        snd=str(identity.device_id),
        skid=identity.signing_kid,
        rkid=key.kid,
        batch=batch.batch_id,
        seq=batch.seq,
        len=0,
    )
    return seal(
        batch.model_dump_json().encode(),
        header,
        recipient_key=key.public,
        signing_key=identity.signing_key,
        suite=key.suite,
    )


def seal_next(replica: Replica) -> SealedBatch | None:
    """Seal the oldest pending operations into the next batch; ``None`` when none wait.

    A batch takes at most ``MAX_BATCH_OPS`` operations and ``MAX_BATCH_BYTES`` of JSON.
    """
    key = pick_transport_key(replica.manifest())
    store, conn = replica.store, replica.conn
    with store.transaction("seal"):
        rows = conn.execute(
            "SELECT n, op_id, body FROM outbox WHERE batch_id IS NULL ORDER BY n LIMIT ?",
            (MAX_BATCH_OPS,),
        ).fetchall()
        if not rows:
            return None
        ops: list[dict[str, Any]] = []
        taken: list[int] = []
        size = 0
        for n, op_id, body in rows:
            op = store.open_json("outbox", "body", op_id, body)
            size += len(json.dumps(op))
            if ops and size > MAX_BATCH_BYTES:
                break
            ops.append(op)
            taken.append(n)
        (seq,) = conn.execute("SELECT next_seq FROM sync_state").fetchone()
        batch = Batch(
            batch_id=uuid7(),
            device_id=replica.identity.device_id,
            seq=seq,
            operator=replica.operator,
            hlc=replica.now(),
            ops=ops,
            backlog=unsealed_count(replica) - len(ops),
        )
        envelope = _seal_batch(replica, batch, key)
        bid = str(batch.batch_id)
        operator = None
        if replica.operator is not None:
            operator = store.vault.seal_json("batch", "operator", bid, [replica.operator])
        conn.execute(
            "INSERT INTO batch (batch_id, seq, hlc, backlog, ops, operator, envelope, sealed_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (bid, seq, batch.hlc, batch.backlog, len(ops), operator, envelope, utcnow()),
        )
        conn.executemany("UPDATE outbox SET batch_id = ? WHERE n = ?", [(bid, n) for n in taken])
        conn.execute("UPDATE sync_state SET next_seq = next_seq + 1")
        replica.save_clock()
    return SealedBatch(batch.batch_id, seq, envelope, len(ops))


def reseal(replica: Replica, batch_id: uuid.UUID) -> SealedBatch:
    """Seal a batch again, same id, seq and operations, to the current transport key."""
    key = pick_transport_key(replica.manifest())
    store, conn = replica.store, replica.conn
    bid = str(batch_id)
    with store.transaction("reseal"):
        seq, hlc, backlog, sealed_operator = conn.execute(
            "SELECT seq, hlc, backlog, operator FROM batch WHERE batch_id = ?", (bid,)
        ).fetchone()
        operator = None
        if sealed_operator is not None:
            (operator,) = store.open_json("batch", "operator", bid, sealed_operator)
        ops = [
            store.open_json("outbox", "body", op_id, body)
            for op_id, body in conn.execute(
                "SELECT op_id, body FROM outbox WHERE batch_id = ? ORDER BY n", (bid,)
            )
        ]
        batch = Batch(
            batch_id=batch_id,
            device_id=replica.identity.device_id,
            seq=seq,
            operator=operator,
            hlc=hlc,
            ops=ops,
            backlog=backlog,
        )
        envelope = _seal_batch(replica, batch, key)
        conn.execute("UPDATE batch SET envelope = ? WHERE batch_id = ?", (envelope, bid))
    return SealedBatch(batch_id, seq, envelope, len(ops))


def apply_receipt(replica: Replica, sent: SealedBatch, receipt: Receipt) -> list[OpResult]:
    """Mark a batch acknowledged and record each operation's outcome."""
    conn = replica.conn
    bid = str(sent.batch_id)
    with replica.store.transaction("ack"):
        ops = conn.execute(
            "SELECT op_id, op, entity, record_id FROM outbox WHERE batch_id = ? ORDER BY n", (bid,)
        ).fetchall()
        by_index = {r.index: r for r in receipt.results}
        now = utcnow()
        rows = []
        for index, (op_id, op, entity, rid) in enumerate(ops):
            result = by_index.get(index)
            if result is None:  # a server that lists no result applied the operation
                result = OpResult(index=index, outcome=Outcome.APPLIED)
            reason = None if result.reason is None else result.reason.value
            rows.append((
                op_id, bid, op, entity, rid, result.outcome.value, reason, result.detail,
                len(result.conflict_ids), len(result.flag_ids), now,
            ))  # fmt: skip
        conn.executemany(
            "INSERT OR REPLACE INTO outcome (op_id, batch_id, op, entity, record_id, outcome,"
            " reason, detail, conflicts, flags, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.execute(
            "DELETE FROM outcome WHERE op_id IN"
            " (SELECT op_id FROM outcome ORDER BY at DESC LIMIT -1 OFFSET ?)",
            (MAX_OUTCOMES,),
        )
        conn.execute(
            "UPDATE outbox SET acked = 1, commit_seq = ? WHERE batch_id = ?",
            (receipt.commit_seq, bid),
        )
        conn.execute(
            "UPDATE batch SET acked = 1, commit_seq = ?, acked_at = ?, envelope = NULL,"
            " operator = NULL WHERE batch_id = ?",
            (receipt.commit_seq, now, bid),
        )
        replica.receive(receipt.server_hlc)
    return [by_index[i] for i in sorted(by_index)]


def outcomes(replica: Replica, kinds: Sequence[str] | None) -> list[tuple[Any, ...]]:
    """Stored outcomes, newest first, optionally of some kinds only."""
    sql = (
        "SELECT op_id, batch_id, op, entity, record_id, outcome, reason, detail, conflicts,"
        " flags, at FROM outcome"
    )
    args: list[Any] = []
    if kinds is not None:
        sql += f" WHERE outcome IN ({', '.join('?' * len(kinds))})"
        args.extend(kinds)
    return replica.conn.execute(sql + " ORDER BY at DESC, op_id", args).fetchall()
