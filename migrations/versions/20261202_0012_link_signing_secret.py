"""link_signing_secrets: the key of signed download links (app/links.py) when LINK_SIGNING_SECRET is unset,
generated on the first start and shared by every process (one row, id 1; the first writer wins).

A new table only: nothing to alter, so no batch operation is needed on SQLite.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 02:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table('link_signing_secrets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('secret', sa.Text(), nullable=False),
    sa.Column('created_at', UTC_DATETIME, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_link_signing_secrets'))
    )


def downgrade() -> None:
    op.drop_table('link_signing_secrets')
