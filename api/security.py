"""Secrets: bearer tokens (stored as SHA-256), passwords (Argon2id), one-time codes."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import Argon2Error

TOKEN_PREFIX = "cs_"  # noqa: S105 - a prefix, not a secret

# argon2-cffi's defaults are Argon2id with RFC 9106's low-memory profile.
_hasher = PasswordHasher()
# Verified against when the user does not exist, so both paths take the same time.
_DUMMY_HASH = _hasher.hash("campsync-timing-equaliser")


def new_token() -> str:
    """A bearer token: 256 random bits. High entropy makes a plain SHA-256 a safe store."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_code(groups: int = 4) -> str:
    """A one-time code a person can type: groups of 4 characters without look-alikes."""
    alphabet = "ABCDEFGHJKMNPQRSTVWXYZ23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(groups))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
    except Argon2Error:
        return False


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
