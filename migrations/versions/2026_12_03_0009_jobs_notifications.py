"""scheduled jobs: notifications, exchange rates, cleanup batches, the analytics view

`analytics_daily` holds per-day counts (cases; documents by status). On Postgres it is a
materialized view with a unique index (so `REFRESH MATERIALIZED VIEW CONCURRENTLY` works); on
SQLite a plain table that the analytics-refresh job rebuilds (`app.analytics.service`). Adding
forwardings by outcome later is one more `UNION ALL` branch here and one more entry in
`app.analytics.service.SOURCES`.

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-03 05:35:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import app.db

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cleanup_batches",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("batch", sa.Integer(), nullable=False),
        sa.Column(
            "cursor", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("documents", sa.Integer(), nullable=False),
        sa.Column("cases", sa.Integer(), nullable=False),
        sa.Column(
            "file_keys", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("files_deleted_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("run_id", "batch", name=op.f("pk_cleanup_batches")),
    )
    op.create_table(
        "exchange_rate_fetches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("base", sa.String(length=3), nullable=False),
        sa.Column("source_url", sa.String(length=500), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("fetched_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_rate_fetches")),
        sa.UniqueConstraint("run_id", name=op.f("uq_exchange_rate_fetches_run_id")),
    )
    with op.batch_alter_table("exchange_rate_fetches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_exchange_rate_fetches_fetched_at"), ["fetched_at"], unique=False)

    op.create_table(
        "exchange_rates",
        sa.Column("fetch_id", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("rate", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["fetch_id"],
            ["exchange_rate_fetches.id"],
            name=op.f("fk_exchange_rates_fetch_id_exchange_rate_fetches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("fetch_id", "currency", name=op.f("pk_exchange_rates")),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("patient_id", sa.String(length=40), nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=True),
        sa.Column(
            "payload", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("digest_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_notifications_patient_id_patients"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_notifications_idempotency_key")),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notifications_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_notifications_patient_id"), ["patient_id"], unique=False)
        batch_op.create_index("ix_notifications_state_patient_id", ["state", "patient_id"], unique=False)

    _create_analytics()


ANALYTICS_PG = """
CREATE MATERIALIZED VIEW analytics_daily AS
SELECT (created_at AT TIME ZONE 'UTC')::date AS day, CAST('cases' AS varchar(20)) AS metric,
       CAST('' AS varchar(40)) AS key, count(*) AS count
FROM cases GROUP BY 1
UNION ALL
SELECT (created_at AT TIME ZONE 'UTC')::date, CAST('documents' AS varchar(20)), CAST(status AS varchar(40)), count(*)
FROM documents GROUP BY 1, 3
WITH DATA
"""


def _create_analytics() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(ANALYTICS_PG)
        op.execute("CREATE UNIQUE INDEX ux_analytics_daily_day_metric_key ON analytics_daily (day, metric, key)")
        return
    op.create_table(
        "analytics_daily",
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("metric", sa.String(length=20), nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", "metric", "key", name=op.f("pk_analytics_daily")),
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP MATERIALIZED VIEW analytics_daily")
    else:
        op.drop_table("analytics_daily")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_state_patient_id")
        batch_op.drop_index(batch_op.f("ix_notifications_patient_id"))
        batch_op.drop_index(batch_op.f("ix_notifications_case_id"))

    op.drop_table("notifications")
    op.drop_table("exchange_rates")
    with op.batch_alter_table("exchange_rate_fetches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exchange_rate_fetches_fetched_at"))

    op.drop_table("exchange_rate_fetches")
    op.drop_table("cleanup_batches")
