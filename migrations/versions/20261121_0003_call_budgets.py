"""Shared upstream call budgets (DashScope's per-account limits, drawn on by every replica).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 22:35:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('call_budgets',
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('tat', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_call_budgets'))
    )


def downgrade() -> None:
    op.drop_table('call_budgets')
