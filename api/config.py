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
    login_free_failures: int = Field(default=5, ge=1, le=1000)
    """Failed logins for one username from one address before each further failure makes
    the next try wait twice as long. An address gets four times as many (across users: an
    office behind one NAT), a username ten times as many (across addresses: a guessing
    botnet); the real user from another address still gets in while one address floods."""
    login_max_backoff_seconds: int = Field(default=900, ge=1, le=86_400)
    """The longest a key waits after failures, however many there were."""
    enrollment_free_failures: int = Field(default=10, ge=1, le=1000)
    """Wrong enrolment codes from one address before it backs off the same way."""
    key_rotation_grace_days: int = Field(default=90, ge=1)
    """A retired transport key stays usable this long (the maximum outbox age)."""

    # Admission (DESIGN.md section 10): what a worker takes on at once, and what it refuses
    # quickly rather than late. The database pool must cover the requests in progress: a
    # request holds at most two connections (its session and a write session), and each of
    # the push gate's merges one more.
    db_pool_size: int = Field(default=10, ge=1, le=200)
    """Connections each worker keeps open to the database."""
    db_max_overflow: int = Field(default=10, ge=0, le=200)
    """Connections a worker may open beyond the pool when it is busy."""
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    """How long a request waits for a database connection before it is answered 503."""
    max_requests_in_progress: int = Field(default=8, ge=1, le=1000)
    """Requests (other than pushes, which have their own gate) a worker works on at once."""
    max_requests_queued: int = Field(default=64, ge=0, le=100_000)
    """Requests that may wait for a turn; one more is answered 503 at once."""
    queue_wait_seconds: float = Field(default=2.0, gt=0, le=60)
    """How long a request waits for its turn before it is answered 503 with Retry-After."""

    # The wire: limits the HTTP server enforces before the app sees anything.
    max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    """Request line and headers together; a larger request is answered 400 and closed."""
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    """A connection whose request line and headers have not all arrived by then is closed."""
    body_timeout_seconds: float = Field(default=20.0, gt=0, le=600)
    """A request whose body has not all arrived this long after its headers is cut off."""
    keep_alive_seconds: int = Field(default=5, ge=1, le=300)
    """An idle kept-alive connection is closed after this long."""
    max_connections: int = Field(default=2048, ge=16, le=100_000)
    """Open connections (and requests) per worker; past it, uvicorn answers 503."""
    trusted_proxies: str = ""
    """Comma-separated addresses of reverse proxies whose ``X-Forwarded-For`` is believed.
    Empty (the default): the client address is the TCP peer's, whatever a header says."""

    docs_enabled: bool = True
    """Serve the OpenAPI description (``/openapi.json``) and its UI (``/docs``)."""

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
