"""Initial schema: the domain of DESIGN.md section 3 plus sync, auth and audit tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-26 07:27:20.176993
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "app_user",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("all_camps", sa.Boolean(), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_user")),
        sa.UniqueConstraint("username", name=op.f("uq_app_user_username")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_type", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=48), nullable=False),
        sa.Column("camp_id", sa.String(length=40), nullable=True),
        sa.Column("entity", sa.String(length=24), nullable=True),
        sa.Column("entity_id", sa.String(length=64), nullable=True),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_camp_id_id", "audit_log", ["camp_id", "id"], unique=False)

    op.create_table(
        "camp",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("country", sa.String(length=60), nullable=True),
        sa.Column("province", sa.String(length=80), nullable=True),
        sa.Column("district", sa.String(length=80), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_camp")),
    )
    op.create_table(
        "change_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("camp_id", sa.String(length=40), nullable=False),
        sa.Column("entity", sa.String(length=24), nullable=False),
        sa.Column("entity_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("op_id", sa.Uuid(), nullable=True),
        sa.Column("batch_id", sa.Uuid(), nullable=True),
        sa.Column("device_id", sa.Uuid(), nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=True),
        sa.Column("hlc", sa.String(length=32), nullable=True),
        sa.Column(
            "changes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_log")),
    )
    op.create_index("ix_change_log_camp_id_seq", "change_log", ["camp_id", "seq"], unique=False)
    op.create_index("ix_change_log_entity_id_id", "change_log", ["entity_id", "id"], unique=False)

    op.create_table(
        "server_key",
        sa.Column("kid", sa.String(length=16), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("private_key", sa.LargeBinary(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("destroy_after", sa.DateTime(timezone=True), nullable=True),
        sa.Column("destroyed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_server_key")),
    )
    op.create_table(
        "server_meta",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_server_meta")),
    )
    op.create_table(
        "sync_counter",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sync_counter")),
    )
    op.create_table(
        "api_token",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=True),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
            name=op.f("fk_api_token_user_id_app_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_token")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_token_token_hash")),
    )
    op.create_index("ix_api_token_user_id", "api_token", ["user_id"], unique=False)

    op.create_table(
        "conflict",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("camp_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("entity", sa.String(length=24), nullable=False),
        sa.Column("entity_id", sa.Uuid(), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=True),
        sa.Column(
            "fields",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "current_value",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("current_hlc", sa.String(length=32), nullable=True),
        sa.Column("current_device_id", sa.Uuid(), nullable=True),
        sa.Column(
            "incoming_value",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("incoming_hlc", sa.String(length=32), nullable=True),
        sa.Column("incoming_device_id", sa.Uuid(), nullable=True),
        sa.Column("incoming_operator", sa.String(length=64), nullable=True),
        sa.Column("op_id", sa.Uuid(), nullable=True),
        sa.Column("batch_id", sa.Uuid(), nullable=True),
        sa.Column("winner", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.Uuid(), nullable=True),
        sa.Column(
            "resolution",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(["camp_id"], ["camp.id"], name=op.f("fk_conflict_camp_id_camp")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conflict")),
    )
    op.create_index("ix_conflict_camp_id_status", "conflict", ["camp_id", "status"], unique=False)
    op.create_index("ix_conflict_entity_id", "conflict", ["entity_id"], unique=False)

    op.create_table(
        "device",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("camp_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("signing_key", sa.LargeBinary(), nullable=False),
        sa.Column("exchange_key", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("node", sa.String(length=16), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_batch_id", sa.Uuid(), nullable=True),
        sa.Column("last_sync_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_pull_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("enrolled_by", sa.Uuid(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(["camp_id"], ["camp.id"], name=op.f("fk_device_camp_id_camp")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device")),
        sa.UniqueConstraint("node", name=op.f("uq_device_node")),
    )
    op.create_index("ix_device_camp_id", "device", ["camp_id"], unique=False)

    op.create_table(
        "enrollment_code",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("camp_id", sa.String(length=40), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("device_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["camp_id"], ["camp.id"], name=op.f("fk_enrollment_code_camp_id_camp")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrollment_code")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_enrollment_code_code_hash")),
    )
    op.create_table(
        "flag",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("camp_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("entity", sa.String(length=24), nullable=False),
        sa.Column("entity_id", sa.Uuid(), nullable=False),
        sa.Column("household_id", sa.Uuid(), nullable=True),
        sa.Column("device_id", sa.Uuid(), nullable=True),
        sa.Column("batch_id", sa.Uuid(), nullable=True),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.Uuid(), nullable=True),
        sa.Column("resolution", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(["camp_id"], ["camp.id"], name=op.f("fk_flag_camp_id_camp")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flag")),
    )
    op.create_index("ix_flag_camp_id_status", "flag", ["camp_id", "status"], unique=False)
    op.create_index("ix_flag_entity_id", "flag", ["entity_id"], unique=False)

    op.create_table(
        "household",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("camp_id", sa.String(length=40), nullable=False),
        sa.Column("head_person_id", sa.Uuid(), nullable=True),
        sa.Column("arrival_date", sa.Date(), nullable=True),
        sa.Column("arrival_type", sa.String(length=16), nullable=True),
        sa.Column("crossing_point", sa.String(length=120), nullable=True),
        sa.Column("origin_country", sa.String(length=120), nullable=True),
        sa.Column("origin_location", sa.String(length=120), nullable=True),
        sa.Column("destination_province", sa.String(length=120), nullable=True),
        sa.Column("destination_district", sa.String(length=120), nullable=True),
        sa.Column("shelter_status", sa.String(length=16), nullable=True),
        sa.Column("shelter_location", sa.String(length=120), nullable=True),
        sa.Column("phone", sa.String(length=24), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "needs",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "vulnerabilities",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "clocks",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "set_clocks",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("deleted_hlc", sa.String(length=32), nullable=True),
        sa.Column("restored_hlc", sa.String(length=32), nullable=True),
        sa.Column("is_deleted", sa.Boolean(), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by_device", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["camp_id"], ["camp.id"], name=op.f("fk_household_camp_id_camp")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_household")),
    )
    op.create_index("ix_household_camp_id_id", "household", ["camp_id", "id"], unique=False)
    op.create_index(
        "ix_household_camp_id_updated_at", "household", ["camp_id", "updated_at"], unique=False
    )

    op.create_table(
        "person",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("camp_id", sa.String(length=40), nullable=False),
        sa.Column("household_id", sa.Uuid(), nullable=True),
        sa.Column("relationship_to_head", sa.String(length=24), nullable=True),
        sa.Column("given_name", sa.String(length=120), nullable=True),
        sa.Column("family_name", sa.String(length=120), nullable=True),
        sa.Column("father_name", sa.String(length=120), nullable=True),
        sa.Column("given_name_local", sa.String(length=120), nullable=True),
        sa.Column("family_name_local", sa.String(length=120), nullable=True),
        sa.Column("father_name_local", sa.String(length=120), nullable=True),
        sa.Column("sex", sa.String(length=16), nullable=True),
        sa.Column("date_of_birth", sa.Date(), nullable=True),
        sa.Column("birth_year", sa.Integer(), nullable=True),
        sa.Column("dob_estimated", sa.Boolean(), nullable=True),
        sa.Column("document_type", sa.String(length=16), nullable=True),
        sa.Column("document_number", sa.String(length=64), nullable=True),
        sa.Column("phone", sa.String(length=24), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "vulnerabilities",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "name_keys",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "clocks",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "set_clocks",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("deleted_hlc", sa.String(length=32), nullable=True),
        sa.Column("restored_hlc", sa.String(length=32), nullable=True),
        sa.Column("is_deleted", sa.Boolean(), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by_device", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["camp_id"], ["camp.id"], name=op.f("fk_person_camp_id_camp")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_person")),
    )
    op.create_index("ix_person_camp_id_id", "person", ["camp_id", "id"], unique=False)
    op.create_index(
        "ix_person_camp_id_updated_at", "person", ["camp_id", "updated_at"], unique=False
    )
    op.create_index("ix_person_household_id", "person", ["household_id"], unique=False)
    op.create_index(
        "ix_person_name_keys", "person", ["name_keys"], unique=False, postgresql_using="gin"
    )

    op.create_table(
        "referral",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("camp_id", sa.String(length=40), nullable=False),
        sa.Column("household_id", sa.Uuid(), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=True),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("urgency", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("hlc", sa.String(length=32), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=True),
        sa.Column("operator", sa.String(length=64), nullable=True),
        sa.Column("batch_id", sa.Uuid(), nullable=True),
        sa.Column("voided_hlc", sa.String(length=32), nullable=True),
        sa.Column("void_reason", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["camp_id"], ["camp.id"], name=op.f("fk_referral_camp_id_camp")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral")),
    )
    op.create_index(
        "ix_referral_camp_id_created_at", "referral", ["camp_id", "created_at"], unique=False
    )
    op.create_index("ix_referral_household_id", "referral", ["household_id"], unique=False)

    op.create_table(
        "service_delivery",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("camp_id", sa.String(length=40), nullable=False),
        sa.Column("household_id", sa.Uuid(), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=True),
        sa.Column("service", sa.String(length=32), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("unit", sa.String(length=24), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hlc", sa.String(length=32), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=True),
        sa.Column("operator", sa.String(length=64), nullable=True),
        sa.Column("batch_id", sa.Uuid(), nullable=True),
        sa.Column("voided_hlc", sa.String(length=32), nullable=True),
        sa.Column("void_reason", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["camp_id"], ["camp.id"], name=op.f("fk_service_delivery_camp_id_camp")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_delivery")),
    )
    op.create_index(
        "ix_service_delivery_camp_id_delivered_at",
        "service_delivery",
        ["camp_id", "delivered_at"],
        unique=False,
    )
    op.create_index(
        "ix_service_delivery_household_id_service",
        "service_delivery",
        ["household_id", "service", "delivered_at"],
        unique=False,
    )

    op.create_table(
        "user_camp",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("camp_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(["camp_id"], ["camp.id"], name=op.f("fk_user_camp_camp_id_camp")),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
            name=op.f("fk_user_camp_user_id_app_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "camp_id", name=op.f("pk_user_camp")),
    )
    op.create_table(
        "batch",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("op_count", sa.Integer(), nullable=False),
        sa.Column("commit_seq", sa.BigInteger(), nullable=True),
        sa.Column(
            "receipt",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["device.id"], name=op.f("fk_batch_device_id_device")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch")),
        sa.UniqueConstraint("device_id", "seq", name=op.f("uq_batch_device_id_seq")),
    )
    op.create_table(
        "quarantine",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("op_index", sa.Integer(), nullable=True),
        sa.Column("op_id", sa.Uuid(), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.String(length=200), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"], ["device.id"], name=op.f("fk_quarantine_device_id_device")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantine")),
    )
    op.create_index("ix_quarantine_device_id", "quarantine", ["device_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_quarantine_device_id", table_name="quarantine")

    op.drop_table("quarantine")
    op.drop_table("batch")
    op.drop_table("user_camp")
    op.drop_index("ix_service_delivery_household_id_service", table_name="service_delivery")
    op.drop_index("ix_service_delivery_camp_id_delivered_at", table_name="service_delivery")

    op.drop_table("service_delivery")
    op.drop_index("ix_referral_household_id", table_name="referral")
    op.drop_index("ix_referral_camp_id_created_at", table_name="referral")

    op.drop_table("referral")
    op.drop_index("ix_person_name_keys", table_name="person", postgresql_using="gin")
    op.drop_index("ix_person_household_id", table_name="person")
    op.drop_index("ix_person_camp_id_updated_at", table_name="person")
    op.drop_index("ix_person_camp_id_id", table_name="person")

    op.drop_table("person")
    op.drop_index("ix_household_camp_id_updated_at", table_name="household")
    op.drop_index("ix_household_camp_id_id", table_name="household")

    op.drop_table("household")
    op.drop_index("ix_flag_entity_id", table_name="flag")
    op.drop_index("ix_flag_camp_id_status", table_name="flag")

    op.drop_table("flag")
    op.drop_table("enrollment_code")
    op.drop_index("ix_device_camp_id", table_name="device")

    op.drop_table("device")
    op.drop_index("ix_conflict_entity_id", table_name="conflict")
    op.drop_index("ix_conflict_camp_id_status", table_name="conflict")

    op.drop_table("conflict")
    op.drop_index("ix_api_token_user_id", table_name="api_token")

    op.drop_table("api_token")
    op.drop_table("sync_counter")
    op.drop_table("server_meta")
    op.drop_table("server_key")
    op.drop_index("ix_change_log_entity_id_id", table_name="change_log")
    op.drop_index("ix_change_log_camp_id_seq", table_name="change_log")

    op.drop_table("change_log")
    op.drop_table("camp")
    op.drop_index("ix_audit_log_camp_id_id", table_name="audit_log")

    op.drop_table("audit_log")
    op.drop_table("app_user")
