"""The tablet's SQLite file: its tables, how each cell is protected, and its transactions.

What is stored in clear is what sync needs to find rows and nothing personal: record ids, the
household a person or event belongs to, whether a record is live, outbox order and batch seqs,
the pull cursor and the clock. Every record state, every queued operation, the device's keys and
the server identity are sealed by :class:`~campsync_client._crypto.Vault`, with the table,
column and row id bound in. Name search goes through blind-index tokens.

Every state change is one ``BEGIN IMMEDIATE`` transaction with ``synchronous=FULL``: when a
method returns, its effect survives a crash or a power cut, and when it raises, nothing of it
happened. That is what lets the sync engine be killed at any point and resume.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidTag

from campsync_client._crypto import KdfParams, Vault, derive_kek, new_wrapped_key, rewrap, unwrap
from campsync_client._errors import StoreError, StoreExists, StoreNotFound

__all__ = ["Store", "remove_files", "utcnow"]

FORMAT: Final = "1"

_SCHEMA: Final = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE sync_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    next_seq INTEGER NOT NULL,
    cursor INTEGER NOT NULL,
    hlc TEXT NOT NULL,
    last_sync_at TEXT
);
CREATE TABLE record (
    id TEXT PRIMARY KEY,
    entity TEXT NOT NULL,
    household_id TEXT,
    live INTEGER NOT NULL,
    base BLOB,
    local BLOB
);
CREATE INDEX record_entity ON record (entity, live);
CREATE INDEX record_household ON record (household_id, entity, live);
CREATE TABLE name_index (
    token BLOB NOT NULL,
    person_id TEXT NOT NULL,
    PRIMARY KEY (token, person_id)
) WITHOUT ROWID;
CREATE INDEX name_index_person ON name_index (person_id);
CREATE TABLE batch (
    batch_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,
    hlc TEXT NOT NULL,
    backlog INTEGER NOT NULL,
    ops INTEGER NOT NULL,
    operator BLOB,
    envelope BLOB,
    acked INTEGER NOT NULL DEFAULT 0,
    commit_seq INTEGER,
    sealed_at TEXT NOT NULL,
    acked_at TEXT
);
CREATE TABLE outbox (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    op_id TEXT NOT NULL UNIQUE,
    op TEXT NOT NULL,
    entity TEXT NOT NULL,
    record_id TEXT NOT NULL,
    body BLOB NOT NULL,
    batch_id TEXT REFERENCES batch (batch_id),
    acked INTEGER NOT NULL DEFAULT 0,
    commit_seq INTEGER
);
CREATE INDEX outbox_record ON outbox (record_id);
CREATE INDEX outbox_batch ON outbox (batch_id);
CREATE TABLE outcome (
    op_id TEXT PRIMARY KEY,
    batch_id TEXT NOT NULL,
    op TEXT NOT NULL,
    entity TEXT NOT NULL,
    record_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT,
    detail TEXT,
    conflicts INTEGER NOT NULL,
    flags INTEGER NOT NULL,
    at TEXT NOT NULL
);
"""


def _connect(path: Path) -> sqlite3.Connection:
    # Opened in a worker thread by AsyncTablet, then used from the event loop (never both).
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    # An acknowledged batch must never be lost to a power cut: FULL syncs every commit.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA secure_delete=ON")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


class Store:
    """An open, unlocked tablet store. Not thread-safe: one tablet object per thread."""

    def __init__(self, path: Path, conn: sqlite3.Connection, vault: Vault, dek: bytes) -> None:
        self.path = path
        self.conn = conn
        self.vault = vault
        self._dek = dek
        self.after_commit: Callable[[str], None] | None = None
        """Called after each commit with its label; crash tests raise from here."""

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def create(cls, path: Path, pin: str, kdf: KdfParams) -> Store:
        """Create a new, empty store readable only with ``pin``.

        Raises:
            StoreExists: when a file is already there.
        """
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        params, wrapped, dek = new_wrapped_key(pin, kdf)
        try:
            # Owner-only from the first byte; SQLite gives its -wal and -shm the same mode.
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            raise StoreExists(f"a tablet store already exists at {path}") from None
        conn = _connect(path)
        try:
            conn.executescript(f"BEGIN;{_SCHEMA}COMMIT;")
            conn.executemany(
                "INSERT INTO meta (name, value) VALUES (?, ?)",
                [("format", FORMAT.encode()), ("kdf", params.to_json().encode()), ("dek", wrapped)],
            )
        except BaseException:
            conn.close()
            remove_files(path)
            raise
        return cls(path, conn, Vault(dek), dek)

    @staticmethod
    def locked(path: Path) -> tuple[sqlite3.Connection, KdfParams, bytes]:
        """Open the file without the PIN: the connection, the KDF parameters, the wrapped key.

        Raises:
            StoreNotFound: when there is no store at ``path``.
            StoreError: when the file is not a tablet store of a known format.
        """
        if not path.is_file():
            raise StoreNotFound(f"no tablet store at {path}")
        conn = _connect(path)
        try:
            rows = dict(conn.execute("SELECT name, value FROM meta").fetchall())
            version = bytes(rows["format"]).decode()
            params = KdfParams.from_json(bytes(rows["kdf"]).decode())
            wrapped = bytes(rows["dek"])
        except (sqlite3.DatabaseError, KeyError, ValueError, TypeError):
            conn.close()
            raise StoreError(f"{path} is not a campsync tablet store") from None
        except BaseException:
            conn.close()
            raise
        if version != FORMAT:
            conn.close()
            raise StoreError("unsupported tablet store format")
        return conn, params, wrapped

    @classmethod
    def unlock(cls, path: Path, conn: sqlite3.Connection, wrapped: bytes, kek: bytes) -> Store:
        """Finish opening with the key derived from the PIN.

        Raises:
            WrongPin: when the key does not unwrap the data key (the connection is closed).
        """
        try:
            dek = unwrap(kek, wrapped)
        except BaseException:
            conn.close()
            raise
        return cls(path, conn, Vault(dek), dek)

    @classmethod
    def open(cls, path: Path, pin: str) -> Store:
        """Open and unlock in one call (the key derivation takes a fraction of a second)."""
        conn, params, wrapped = cls.locked(path)
        try:
            kek = derive_kek(pin, params)
        except BaseException:
            conn.close()
            raise
        return cls.unlock(path, conn, wrapped, kek)

    def change_pin(self, new_pin: str) -> None:
        """Rewrap the data key under a new PIN; nothing else is re-encrypted."""
        old = KdfParams.from_json(bytes(self.meta_plain("kdf")).decode())
        params, wrapped = rewrap(self._dek, new_pin, old)
        with self.transaction("change_pin"):
            self.conn.execute(
                "UPDATE meta SET value = ? WHERE name = 'kdf'", (params.to_json().encode(),)
            )
            self.conn.execute("UPDATE meta SET value = ? WHERE name = 'dek'", (wrapped,))

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()

    def wipe(self) -> None:
        """Destroy the wrapped data key, then delete every file of the store.

        Everything personal is sealed under that key, so once its wrapped copy is overwritten
        (``secure_delete``) whatever the file system keeps of the old blocks is unreadable.
        """
        with contextlib.suppress(sqlite3.Error):
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("UPDATE meta SET value = zeroblob(length(value))")
            for table in ("record", "name_index", "outbox", "batch", "outcome", "meta"):
                self.conn.execute(f"DELETE FROM {table}")  # noqa: S608 (fixed names)
            self.conn.execute("COMMIT")
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.close()
        remove_files(self.path)

    # ------------------------------------------------------------------ transactions

    @contextlib.contextmanager
    def transaction(self, label: str) -> Iterator[sqlite3.Connection]:
        """One atomic, durable unit of work; ``label`` names it for crash tests."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
        if self.after_commit is not None:
            self.after_commit(label)

    # ------------------------------------------------------------------ cells

    def meta_plain(self, name: str) -> bytes:
        """A clear meta value (format, KDF parameters, wrapped key)."""
        row = self.conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise StoreError(f"the store lacks {name}")
        return bytes(row[0])

    def get_sealed(self, name: str) -> Any:
        """A sealed meta value, decrypted."""
        return self.open_json("meta", "value", name, self.meta_plain(name))

    def put_sealed(self, name: str, value: object) -> None:
        """Seal and store a meta value (inside the caller's transaction)."""
        self.conn.execute(
            "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)",
            (name, self.vault.seal_json("meta", "value", name, value)),
        )

    def open_json(self, table: str, column: str, row: str, sealed: bytes) -> Any:
        """Decrypt a sealed cell.

        Raises:
            StoreError: when it was altered or moved (never returns garbage).
        """
        try:
            return self.vault.open_json(table, column, row, sealed)
        except InvalidTag:
            raise StoreError(f"{table}.{column} of {row} fails authentication") from None


def remove_files(path: Path) -> None:
    """Delete a store and its journal files, whichever exist."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()


def utcnow() -> str:
    """The current UTC time as stored (ISO 8601)."""
    return dt.datetime.now(dt.UTC).isoformat()
