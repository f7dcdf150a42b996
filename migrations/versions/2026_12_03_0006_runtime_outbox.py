"""runtime under faults: the outbox (continuations written with the change that calls for them);
workflow_runs.resumes, .wake_pending (the delivery doorbell) and .failure (its fields);
workflow_steps.error_type; workflow_notifications.source (ctx.notify sends once)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 03:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import app.db

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    with op.batch_alter_table('workflow_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resumes', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('wake_pending', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('failure', _json(), nullable=True))
    with op.batch_alter_table('workflow_steps', schema=None) as batch_op:
        batch_op.add_column(sa.Column('error_type', sa.String(length=200), nullable=True))
    with op.batch_alter_table('workflow_notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('woken', _json(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_workflow_notifications_source'), ['source'])
    op.create_table('workflow_outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('workflow', sa.String(length=100), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['workflow_runs.id'], name=op.f('fk_workflow_outbox_run_id_workflow_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workflow_outbox'))
    )
    with op.batch_alter_table('workflow_outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_workflow_outbox_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_workflow_outbox_run_id'), ['run_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('workflow_outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_workflow_outbox_run_id'))
        batch_op.drop_index(batch_op.f('ix_workflow_outbox_created_at'))
    op.drop_table('workflow_outbox')
    with op.batch_alter_table('workflow_notifications', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_workflow_notifications_source'), type_='unique')
        batch_op.drop_column('woken')
        batch_op.drop_column('source')
    with op.batch_alter_table('workflow_steps', schema=None) as batch_op:
        batch_op.drop_column('error_type')
    with op.batch_alter_table('workflow_runs', schema=None) as batch_op:
        batch_op.drop_column('failure')
        batch_op.drop_column('wake_pending')
        batch_op.drop_column('resumes')
