"""Server settings, read from ``CAMPSYNC_*`` environment variables (and a ``.env`` file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CAMPSYNC_", env_file=".env", env_ignore_empty=True, extra="ignore"
    )

    data_dir: Path = Path("./campsync-data")
    """Holds the embedded SQLite file and, by default, the server's keys."""

    database_url: str | None = None
    """SQLAlchemy URL; default ``sqlite:///<data_dir>/campsync.db``. PostgreSQL goes through
    psycopg 3: ``postgresql+psycopg://user@host/db``."""

    public_url: str = "http://127.0.0.1:8000"
    """How tablets reach this server; printed in enrolment QR payloads."""

    key_store: Literal["data_dir", "database"] = "data_dir"
    """Where server private keys live: files under ``data_dir/keys`` or the database."""

    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"

    # Limits (OWASP API4): every input is bounded.
    max_envelope_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    max_plaintext_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_operations_per_batch: int = Field(default=1000, ge=1)
    max_page_size: int = Field(default=1000, ge=1)
    max_json_body_bytes: int = Field(default=256 * 1024, ge=1024)
    request_timeout_seconds: float = Field(default=30.0, gt=0)

    clock_skew_seconds: int = Field(default=300, ge=0)
    """Incoming clocks further ahead than this are clamped and flagged."""

    enrollment_code_ttl_minutes: int = Field(default=60 * 24, ge=1)
    device_token_ttl_seconds: int = Field(default=900, ge=60)
    login_token_ttl_minutes: int = Field(default=12 * 60, ge=5)
    """Lifetime of a token obtained by logging in with a password."""
    login_max_failures: int = Field(default=10, ge=1)
    login_lockout_minutes: int = Field(default=15, ge=1)
    """After this many failed logins for one username or one address within the window, the
    login answers 429 until the window has passed."""
    key_rotation_grace_days: int = Field(default=90, ge=1)
    """A retired transport key stays usable this long (the maximum outbox age)."""

    workers: int = Field(default=1, ge=1)
    """Server processes; ``campsync serve --workers N`` sets it for the processes it starts."""

    @field_validator("database_url")
    @classmethod
    def _postgres_driver(cls, value: str | None) -> str | None:
        # A bare postgresql:// URL would pick psycopg2, which is not installed.
        if value and value.startswith(("postgresql://", "postgres://")):
            return "postgresql+psycopg://" + value.split("://", 1)[1]
        return value

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'campsync.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
