"""Create the jobs table: the job record and the work queue in one.

Revision ID: 0001
Revises: 
Create Date: 2026-11-21 20:24:29.549119+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here rather than imported from the app, so this revision never changes with the app's code.
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table('jobs',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('owner', sa.String(length=64), nullable=True),
    sa.Column('idempotency_key', sa.String(length=255), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('model', sa.String(length=64), nullable=False),
    sa.Column('limit_group', sa.String(length=16), nullable=False),
    sa.Column('request', JSON_DOC, nullable=False),
    sa.Column('upstream_body', JSON_DOC, nullable=True),
    sa.Column('warnings', JSON_DOC, nullable=False),
    sa.Column('metadata', JSON_DOC, nullable=True),
    sa.Column('webhook_url', sa.Text(), nullable=True),
    sa.Column('webhook_events', JSON_DOC, nullable=True),
    sa.Column('task_id', sa.String(length=64), nullable=True),
    sa.Column('upstream_status', sa.String(length=16), nullable=True),
    sa.Column('upstream', JSON_DOC, nullable=True),
    sa.Column('video_source_url', sa.Text(), nullable=True),
    sa.Column('video_source_expires_at', UTC_DATETIME, nullable=True),
    sa.Column('submit_started_at', UTC_DATETIME, nullable=True),
    sa.Column('create_attempt', JSON_DOC, nullable=True),
    sa.Column('submit_attempts', sa.Integer(), nullable=False),
    sa.Column('poll_count', sa.Integer(), nullable=False),
    sa.Column('retry_count', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('next_attempt_at', UTC_DATETIME, nullable=True),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_expires_at', UTC_DATETIME, nullable=True),
    sa.Column('deadline_at', UTC_DATETIME, nullable=False),
    sa.Column('storage_key', sa.String(length=255), nullable=True),
    sa.Column('result', JSON_DOC, nullable=True),
    sa.Column('error', JSON_DOC, nullable=True),
    sa.Column('created_at', UTC_DATETIME, nullable=False),
    sa.Column('updated_at', UTC_DATETIME, nullable=False),
    sa.Column('submitted_at', UTC_DATETIME, nullable=True),
    sa.Column('finished_at', UTC_DATETIME, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs')),
    sa.UniqueConstraint('owner', 'idempotency_key', name='uq_jobs_owner_idempotency_key'),
    sa.UniqueConstraint('task_id', name=op.f('uq_jobs_task_id'))
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_created_at_id', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_jobs_limit_group_status', ['limit_group', 'status'], unique=False)
        batch_op.create_index('ix_jobs_owner_created_at', ['owner', 'created_at'], unique=False)
        batch_op.create_index('ix_jobs_status_next_attempt_at', ['status', 'next_attempt_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_status_next_attempt_at')
        batch_op.drop_index('ix_jobs_owner_created_at')
        batch_op.drop_index('ix_jobs_limit_group_status')
        batch_op.drop_index('ix_jobs_created_at_id')

    op.drop_table('jobs')
