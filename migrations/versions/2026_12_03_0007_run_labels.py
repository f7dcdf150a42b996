"""run labels: workflow_runs.labels and the indexed workflow_run_labels replace case_id/document_id

The runtime knows runs, steps and labels, never cases or documents: a workflow sets its runs'
correlation keys as labels. Existing runs keep theirs (case_id and document_id become labels).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 03:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEYS = ("case_id", "document_id")


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('workflow_run_labels',
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['workflow_runs.id'], name=op.f('fk_workflow_run_labels_run_id_workflow_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'key', name=op.f('pk_workflow_run_labels'))
    )
    with op.batch_alter_table('workflow_run_labels', schema=None) as batch_op:
        batch_op.create_index('ix_workflow_run_labels_key_value', ['key', 'value'], unique=False)
    with op.batch_alter_table('workflow_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('labels', _json(), nullable=True))
    _copy_columns_to_labels()
    with op.batch_alter_table('workflow_runs', schema=None) as batch_op:
        batch_op.alter_column('labels', existing_type=_json(), nullable=False)
        batch_op.drop_index(batch_op.f('ix_workflow_runs_case_id'))
        batch_op.drop_column('document_id')
        batch_op.drop_column('case_id')


def _copy_columns_to_labels() -> None:
    runs = sa.table('workflow_runs', sa.column('id'), sa.column('case_id'), sa.column('document_id'),
                    sa.column('labels', _json()))
    labels = sa.table('workflow_run_labels', sa.column('run_id'), sa.column('key'), sa.column('value'))
    bind = op.get_bind()
    for run_id, case_id, document_id in bind.execute(sa.select(runs.c.id, runs.c.case_id, runs.c.document_id)).all():
        kept = {k: v for k, v in zip(KEYS, (case_id, document_id), strict=True) if v is not None}
        bind.execute(runs.update().where(runs.c.id == run_id).values(labels=kept))
        if kept:
            bind.execute(labels.insert(), [{"run_id": run_id, "key": k, "value": v} for k, v in kept.items()])


def downgrade() -> None:
    with op.batch_alter_table('workflow_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('case_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('document_id', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_workflow_runs_case_id'), ['case_id'], unique=False)
    with op.batch_alter_table('workflow_runs', schema=None) as batch_op:
        batch_op.drop_column('labels')
    with op.batch_alter_table('workflow_run_labels', schema=None) as batch_op:
        batch_op.drop_index('ix_workflow_run_labels_key_value')
    op.drop_table('workflow_run_labels')
