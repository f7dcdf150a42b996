"""ops usage: QStash messages and inline steps per day and workflow

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 06:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ops_usage",
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("workflow", sa.String(length=100), nullable=False),
        sa.Column("messages", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("inline_steps", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("day", "workflow", name=op.f("pk_ops_usage")),
    )


def downgrade() -> None:
    op.drop_table("ops_usage")
