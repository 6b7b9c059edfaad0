"""jobs: `deleted_at` (DELETE /v1/jobs/{id}: the row stays, out of every read) and `expired_at` (its stored
video was removed by STORAGE_RETENTION_S; the job stays, `/content` answers 410).

`ix_jobs_storage_key` finds every job that points at one stored object (result reuse shares it), so an
object is removed only with its last job. `ix_jobs_status_finished_at` is the retention loop's scan of old
succeeded jobs.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 01:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here rather than imported from the app, so this revision never changes with the app's code.
UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deleted_at', UTC_DATETIME, nullable=True))
        batch_op.add_column(sa.Column('expired_at', UTC_DATETIME, nullable=True))
        batch_op.create_index('ix_jobs_storage_key', ['storage_key'], unique=False)
        batch_op.create_index('ix_jobs_status_finished_at', ['status', 'finished_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_status_finished_at')
        batch_op.drop_index('ix_jobs_storage_key')
        batch_op.drop_column('expired_at')
        batch_op.drop_column('deleted_at')
