"""qstash schedules: cron schedules of the embedded QStash server (app/devqstash/models.py)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 23:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import app.db

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def _timestamp() -> sa.types.TypeEngine:
    return app.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table('qstash_schedules',
    sa.Column('id', sa.String(length=100), nullable=False),
    sa.Column('destination', sa.Text(), nullable=False),
    sa.Column('cron', sa.String(length=300), nullable=False),
    sa.Column('queue_name', sa.String(length=200), nullable=True),
    sa.Column('method', sa.String(length=10), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.Column('content_type', sa.String(length=255), nullable=True),
    sa.Column('forward_headers', _json(), nullable=False),
    sa.Column('control_headers', _json(), nullable=False),
    sa.Column('callback', sa.Text(), nullable=True),
    sa.Column('callback_headers', _json(), nullable=False),
    sa.Column('failure_callback', sa.Text(), nullable=True),
    sa.Column('failure_callback_headers', _json(), nullable=False),
    sa.Column('max_retries', sa.Integer(), nullable=False),
    sa.Column('retry_delay', sa.Text(), nullable=True),
    sa.Column('timeout_s', sa.Float(), nullable=True),
    sa.Column('delay_s', sa.Float(), nullable=True),
    sa.Column('label', sa.String(length=200), nullable=True),
    sa.Column('caller_ip', sa.String(length=64), nullable=True),
    sa.Column('is_paused', sa.Boolean(), nullable=False),
    sa.Column('next_fire_at', _timestamp(), nullable=False),
    sa.Column('last_fire_at', _timestamp(), nullable=True),
    sa.Column('last_message_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', _timestamp(), nullable=False),
    sa.Column('updated_at', _timestamp(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qstash_schedules'))
    )
    with op.batch_alter_table('qstash_schedules', schema=None) as batch_op:
        batch_op.create_index('ix_qstash_schedules_is_paused_next_fire_at', ['is_paused', 'next_fire_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('qstash_schedules', schema=None) as batch_op:
        batch_op.drop_index('ix_qstash_schedules_is_paused_next_fire_at')

    op.drop_table('qstash_schedules')
