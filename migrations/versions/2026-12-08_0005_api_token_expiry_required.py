"""Users: every API token expires; tokens made without an expiry get created_at + 90 days.

Until now ``campsync admin create-user`` made tokens that never expired. The backfill gives
each of them the lifetime such a token gets today (90 days) counted from when it was made, not
from the upgrade: a token made more than 90 days ago has outlived that lifetime and stops
working when this revision runs, and its owner needs a new one
(``campsync admin create-token``). Downgrading makes the column nullable again and keeps the
dates.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08 02:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BACKFILL = {
    "postgresql": (
        "UPDATE api_token SET expires_at = created_at + interval '90 days' WHERE expires_at IS NULL"
    ),
    # SQLite stores 'YYYY-MM-DD HH:MM:SS.ffffff' and datetime() drops the fraction: it is
    # carried over, so backfilled values keep the stored form that text comparisons rely on.
    "sqlite": (
        "UPDATE api_token SET expires_at = datetime(created_at, '+90 days') "
        "|| substr(created_at, 20) WHERE expires_at IS NULL"
    ),
}


def upgrade() -> None:
    op.execute(_BACKFILL[op.get_bind().dialect.name])
    with op.batch_alter_table("api_token") as batch:
        batch.alter_column("expires_at", existing_type=sa.DateTime(timezone=True), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("api_token") as batch:
        batch.alter_column("expires_at", existing_type=sa.DateTime(timezone=True), nullable=True)
