"""Encryption at rest: a PIN-derived key wraps a random data key that seals every personal column.

Key hierarchy::

    PIN ──Argon2id(salt, params)──▶ KEK ──AES-256-GCM──▶ wrapped DEK      (stored)
    DEK ──HKDF("seal")──▶ sealing key: AES-256-GCM per value, random nonce,
                                       associated data = table ‖ column ‖ row id
    DEK ──HKDF("index")─▶ index key:   HMAC-SHA256 blind index of name keys (search)

A wrong PIN derives another KEK, the unwrap fails its tag, and nothing is decrypted. Binding
the row id into the associated data stops an attacker with the file from swapping ciphertexts
between rows or columns. Changing the PIN rewraps the DEK; wiping destroys the wrapped DEK.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import asdict, dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from campsync_client._errors import ValidationError, WrongPin

__all__ = ["KdfParams", "Vault", "derive_kek", "new_wrapped_key", "rewrap", "unwrap"]

_NONCE: Final = 12
_WRAP_AD: Final = b"campsync-tablet/v1/dek\x00"
MIN_PIN: Final = 4
MAX_PIN: Final = 128


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id parameters, stored beside the wrapped key so they can be raised later.

    The default follows RFC 9106's second recommendation (64 MiB, 3 passes); about 0.2 s on
    a server core, more on a tablet, which is what makes guessing PINs from a stolen file slow.
    """

    memory_kib: int = 64 * 1024
    iterations: int = 3
    lanes: int = 4
    salt: str = ""

    def to_json(self) -> str:
        """The stored form."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> KdfParams:
        """Inverse of :meth:`to_json`."""
        return cls(**json.loads(text))


DEFAULT_KDF = KdfParams()
"""The cost new stores get. Tests lower it; a deployment may raise it."""


def check_pin(pin: str) -> bytes:
    """Encode a PIN, refusing ones too short to resist a guess or absurdly long."""
    if not isinstance(pin, str) or not MIN_PIN <= len(pin) <= MAX_PIN:
        raise ValidationError(
            "pin", "invalid_length", f"a PIN has {MIN_PIN} to {MAX_PIN} characters"
        )
    return pin.encode()


def derive_kek(pin: str, params: KdfParams) -> bytes:
    """Derive the key-encryption key from a PIN (slow on purpose)."""
    kdf = Argon2id(
        salt=bytes.fromhex(params.salt),
        length=32,
        iterations=params.iterations,
        lanes=params.lanes,
        memory_cost=params.memory_kib,
    )
    return kdf.derive(check_pin(pin))


def new_wrapped_key(pin: str, base: KdfParams = DEFAULT_KDF) -> tuple[KdfParams, bytes, bytes]:
    """A fresh data key wrapped under a PIN: returns (params with salt, wrapped, data key)."""
    params = KdfParams(base.memory_kib, base.iterations, base.lanes, os.urandom(16).hex())
    dek = AESGCM.generate_key(bit_length=256)
    return params, _wrap(derive_kek(pin, params), dek), dek


def _wrap(kek: bytes, dek: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    return nonce + AESGCM(kek).encrypt(nonce, dek, _WRAP_AD)


def unwrap(kek: bytes, wrapped: bytes) -> bytes:
    """Recover the data key.

    Raises:
        WrongPin: when the KEK is not the one that wrapped it.
    """
    try:
        return AESGCM(kek).decrypt(wrapped[:_NONCE], wrapped[_NONCE:], _WRAP_AD)
    except (InvalidTag, ValueError):
        raise WrongPin from None


def rewrap(dek: bytes, new_pin: str, base: KdfParams) -> tuple[KdfParams, bytes]:
    """Wrap an existing data key under a new PIN (with a new salt)."""
    params = KdfParams(base.memory_kib, base.iterations, base.lanes, os.urandom(16).hex())
    return params, _wrap(derive_kek(new_pin, params), dek)


def _subkey(dek: bytes, label: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=None, info=b"campsync-tablet/v1/" + label).derive(dek)


class Vault:
    """Seals and opens stored values with keys derived from the data key."""

    __slots__ = ("_aead", "_index_key")

    def __init__(self, dek: bytes) -> None:
        self._aead = AESGCM(_subkey(dek, b"seal"))
        self._index_key = _subkey(dek, b"index")

    @staticmethod
    def _ad(table: str, column: str, row: str) -> bytes:
        return f"{table}\x00{column}\x00{row}".encode()

    def seal(self, table: str, column: str, row: str, plaintext: bytes) -> bytes:
        """Encrypt ``plaintext`` for one cell; the cell's address is authenticated."""
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, plaintext, self._ad(table, column, row))

    def open(self, table: str, column: str, row: str, sealed: bytes) -> bytes:
        """Decrypt one cell.

        Raises:
            cryptography.exceptions.InvalidTag: when the cell was altered or moved.
        """
        return self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], self._ad(table, column, row))

    def seal_json(self, table: str, column: str, row: str, value: object) -> bytes:
        """Encrypt a JSON-serialisable value."""
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        return self.seal(table, column, row, text.encode())

    def open_json(self, table: str, column: str, row: str, sealed: bytes) -> object:
        """Decrypt a value sealed by :meth:`seal_json`."""
        return json.loads(self.open(table, column, row, sealed))

    def token(self, kind: str, key: str) -> bytes:
        """A blind index token: equal keys give equal tokens, and nothing else is learnt."""
        message = kind.encode() + b"\x00" + key.encode()
        return hmac.new(self._index_key, message, hashlib.sha256).digest()[:16]
