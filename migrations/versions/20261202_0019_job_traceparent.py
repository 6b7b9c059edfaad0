"""jobs.traceparent: the W3C trace context of the request that submitted a job (tracing on only).

The worker's spans about the job join that trace (app/telemetry/tracing.py). NULL when tracing is off,
and for every job before this revision.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02 04:50:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0019'
down_revision: str | None = '0018'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('traceparent', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('traceparent')
