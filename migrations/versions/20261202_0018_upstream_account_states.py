"""upstream_account_states: pooled accounts out of rotation, shared by every process.

A row per account whose key was refused (401/403 on any call), with why and when a job may be placed on
it again; deleted when a call on it goes through. Read by every replica's placement, /readyz and /metrics.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 05:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0018'
# 0017 is taken by a parallel branch (job copy progress); the integrator re-chains at merge.
down_revision: str | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('upstream_account_states',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('why', sa.String(length=200), nullable=False),
    sa.Column('refused_at', sa.Float(), nullable=False),
    sa.Column('retry_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_upstream_account_states'))
    )


def downgrade() -> None:
    op.drop_table('upstream_account_states')
