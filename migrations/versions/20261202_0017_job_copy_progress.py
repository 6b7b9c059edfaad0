"""jobs.copy_bytes / jobs.copy_total_bytes: how far the copy of a finished video has got.

Written by the job poller while a job is `storing` (at most about once a second, without touching the
job's version), read by every API process for the job's `progress`. NULL: no copy has started yet, or
the upstream did not declare the size.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 04:45:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0017'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('copy_bytes', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('copy_total_bytes', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('copy_total_bytes')
        batch_op.drop_column('copy_bytes')
