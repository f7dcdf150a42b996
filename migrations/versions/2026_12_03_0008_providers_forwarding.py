"""providers, consents, forwardings, provider_webhooks and their attempts (issue 10)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 05:39:14.663671
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import app.db

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "providers",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("webhook_url", sa.String(length=2000), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=False),
        sa.Column("previous_secret", sa.String(length=200), nullable=True),
        sa.Column("previous_secret_expires_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ack_required", sa.Boolean(), nullable=False),
        sa.Column("circuit_state", sa.String(length=20), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("circuit_opened_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("probe_delivery_id", sa.String(length=40), nullable=True),
        sa.Column("probe_expires_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("secret_rotated_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_providers")),
    )
    op.create_table(
        "provider_webhooks",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("provider_id", sa.String(length=40), nullable=False),
        sa.Column("forwarding_id", sa.String(length=40), nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("series", sa.Integer(), nullable=False),
        sa.Column("workflow_run_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["providers.id"],
            name=op.f("fk_provider_webhooks_provider_id_providers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_webhooks")),
        sa.UniqueConstraint(
            "forwarding_id", "provider_id", name=op.f("uq_provider_webhooks_forwarding_id_provider_id")
        ),
    )
    with op.batch_alter_table("provider_webhooks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_provider_webhooks_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_provider_webhooks_forwarding_id"), ["forwarding_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_provider_webhooks_provider_id"), ["provider_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_provider_webhooks_status"), ["status"], unique=False)

    op.create_table(
        "consents",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("provider_id", sa.String(length=40), nullable=False),
        sa.Column("granted_by", sa.String(length=80), nullable=False),
        sa.Column("granted_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_by", sa.String(length=80), nullable=True),
        sa.Column("revoked_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_consents_case_id_cases"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["providers.id"], name=op.f("fk_consents_provider_id_providers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
    )
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consents_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_consents_provider_id"), ["provider_id"], unique=False)

    op.create_table(
        "forwardings",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column(
            "provider_ids",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("requested_by", sa.String(length=80), nullable=False),
        sa.Column("workflow_run_id", sa.String(length=64), nullable=True),
        sa.Column(
            "packet", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.Column("failure_reason", sa.String(length=2000), nullable=True),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_forwardings_case_id_cases"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forwardings")),
    )
    with op.batch_alter_table("forwardings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_forwardings_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_forwardings_status"), ["status"], unique=False)

    op.create_table(
        "provider_webhook_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("delivery_id", sa.String(length=40), nullable=False),
        sa.Column("provider_id", sa.String(length=40), nullable=False),
        sa.Column("series", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("response_excerpt", sa.Text(), nullable=True),
        sa.Column("retry_in_s", sa.Double(), nullable=True),
        sa.Column(
            "detail", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["provider_webhooks.id"],
            name=op.f("fk_provider_webhook_attempts_delivery_id_provider_webhooks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_webhook_attempts")),
        sa.UniqueConstraint(
            "delivery_id", "series", "attempt", name=op.f("uq_provider_webhook_attempts_delivery_id_series_attempt")
        ),
    )
    with op.batch_alter_table("provider_webhook_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_provider_webhook_attempts_delivery_id"), ["delivery_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_provider_webhook_attempts_provider_id"), ["provider_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("provider_webhook_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_provider_webhook_attempts_provider_id"))
        batch_op.drop_index(batch_op.f("ix_provider_webhook_attempts_delivery_id"))

    op.drop_table("provider_webhook_attempts")
    with op.batch_alter_table("forwardings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_forwardings_status"))
        batch_op.drop_index(batch_op.f("ix_forwardings_case_id"))

    op.drop_table("forwardings")
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consents_provider_id"))
        batch_op.drop_index(batch_op.f("ix_consents_case_id"))

    op.drop_table("consents")
    with op.batch_alter_table("provider_webhooks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_provider_webhooks_status"))
        batch_op.drop_index(batch_op.f("ix_provider_webhooks_provider_id"))
        batch_op.drop_index(batch_op.f("ix_provider_webhooks_forwarding_id"))
        batch_op.drop_index(batch_op.f("ix_provider_webhooks_case_id"))

    op.drop_table("provider_webhooks")
    op.drop_table("providers")
