"""Registry: the name-keys index only where it serves searches (PostgreSQL's GIN).

On SQLite an index over the JSON text of ``name_keys`` serves no query (search tests the
text with ``instr`` and ``json_each``) and costs every write of a person.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 11:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.drop_index("ix_person_name_keys", table_name="person")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.create_index("ix_person_name_keys", "person", ["name_keys"], unique=False)
