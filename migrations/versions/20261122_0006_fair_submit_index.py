"""Index for the fair submit order: a tenant's latest submit in a model family.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 02:00:00+00:00
"""

from collections.abc import Sequence

from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index(
            'ix_jobs_limit_group_owner_submitted_at', ['limit_group', 'owner', 'submitted_at'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_limit_group_owner_submitted_at')
