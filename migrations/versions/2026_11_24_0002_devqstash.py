"""devqstash: tables of the embedded QStash server (app/devqstash/models.py)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 21:25:04.482314
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import app.db

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def _timestamp() -> sa.types.TypeEngine:
    return app.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table('qstash_messages',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
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
    sa.Column('label', sa.String(length=200), nullable=True),
    sa.Column('schedule_id', sa.String(length=100), nullable=True),
    sa.Column('caller_ip', sa.String(length=64), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('retried', sa.Integer(), nullable=False),
    sa.Column('not_before', _timestamp(), nullable=False),
    sa.Column('next_delivery_at', _timestamp(), nullable=False),
    sa.Column('claim_token', sa.String(length=40), nullable=True),
    sa.Column('claimed_until', _timestamp(), nullable=True),
    sa.Column('created_at', _timestamp(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qstash_messages'))
    )
    with op.batch_alter_table('qstash_messages', schema=None) as batch_op:
        batch_op.create_index('ix_qstash_messages_state_due', ['state', 'next_delivery_at'], unique=False)

    op.create_table('qstash_dlq',
    sa.Column('dlq_id', sa.String(length=40), nullable=False),
    sa.Column('message_id', sa.String(length=64), nullable=False),
    sa.Column('response_status', sa.Integer(), nullable=False),
    sa.Column('response_headers', _json(), nullable=False),
    sa.Column('response_body', sa.LargeBinary(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', _timestamp(), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['qstash_messages.id'], name=op.f('fk_qstash_dlq_message_id_qstash_messages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('dlq_id', name=op.f('pk_qstash_dlq'))
    )
    with op.batch_alter_table('qstash_dlq', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_qstash_dlq_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_qstash_dlq_message_id'), ['message_id'], unique=False)

    op.create_table('qstash_dedup',
    sa.Column('key', sa.String(length=80), nullable=False),
    sa.Column('message_id', sa.String(length=64), nullable=False),
    sa.Column('expires_at', _timestamp(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_qstash_dedup'))
    )
    with op.batch_alter_table('qstash_dedup', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_qstash_dedup_expires_at'), ['expires_at'], unique=False)

    op.create_table('qstash_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('message_id', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('details', _json(), nullable=False),
    sa.Column('created_at', _timestamp(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qstash_events'))
    )
    with op.batch_alter_table('qstash_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_qstash_events_created_at'), ['created_at'], unique=False)
        batch_op.create_index('ix_qstash_events_message_id_id', ['message_id', 'id'], unique=False)


def downgrade() -> None:
    op.drop_table('qstash_events')
    op.drop_table('qstash_dedup')
    op.drop_table('qstash_dlq')
    op.drop_table('qstash_messages')
