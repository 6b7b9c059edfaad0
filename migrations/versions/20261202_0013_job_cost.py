"""jobs.cost and jobs.price_version: what a job costs (estimated at submit, billed at its end) and the
version of the price table that priced it (app/billing/).

`cost` is `{amount, currency, billed_seconds, unit_price, estimated}` (amounts as decimal strings); both
columns are null for a job the table does not price, and for jobs created before this revision.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 02:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here rather than imported from the app, so this revision never changes with the app's code.
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cost', JSON_DOC, nullable=True))
        batch_op.add_column(sa.Column('price_version', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('price_version')
        batch_op.drop_column('cost')
