"""Indexes for the coordinator API: review queues, flags by household, audit by record.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 09:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_conflict_camp_id_status", table_name="conflict")
    op.create_index(
        "ix_conflict_camp_id_status_created_at",
        "conflict",
        ["camp_id", "status", "created_at"],
        unique=False,
    )
    op.drop_index("ix_flag_camp_id_status", table_name="flag")
    op.create_index(
        "ix_flag_camp_id_status_created_at",
        "flag",
        ["camp_id", "status", "created_at"],
        unique=False,
    )
    op.create_index("ix_flag_household_id", "flag", ["household_id"], unique=False)
    op.create_index("ix_audit_log_entity_id_id", "audit_log", ["entity_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_audit_log_entity_id_id", table_name="audit_log")
    op.drop_index("ix_flag_household_id", table_name="flag")
    op.drop_index("ix_flag_camp_id_status_created_at", table_name="flag")
    op.create_index("ix_flag_camp_id_status", "flag", ["camp_id", "status"], unique=False)
    op.drop_index("ix_conflict_camp_id_status_created_at", table_name="conflict")
    op.create_index("ix_conflict_camp_id_status", "conflict", ["camp_id", "status"], unique=False)
