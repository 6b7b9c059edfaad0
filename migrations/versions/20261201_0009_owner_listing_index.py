"""jobs: the tenant's listing index gains `id`, so a page (newest first, `created_at DESC, id DESC`) is read
straight off the index in order, without sorting the rows that share a `created_at`.

It replaces ix_jobs_owner_created_at: quota admission's `owner = ? AND created_at > ?` ranges use the
wider index just as well.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 21:30:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_owner_created_at_id', ['owner', 'created_at', 'id'], unique=False)
        batch_op.drop_index('ix_jobs_owner_created_at')


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_owner_created_at', ['owner', 'created_at'], unique=False)
        batch_op.drop_index('ix_jobs_owner_created_at_id')
