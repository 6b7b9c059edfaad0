"""jobs.account: the upstream account (DASHSCOPE_ACCOUNTS entry name) a job was sent to.

Set when the job is claimed for submission; polls, cancel and reconciliation use that account's client
only. NULL is the single (default) account, which every job before this revision used.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 02:40:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('account', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('account')
