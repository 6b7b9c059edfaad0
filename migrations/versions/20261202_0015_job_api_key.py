"""jobs.api_key: the name of the key that made a job (`wan-gateway keys list`, or its GATEWAY_API_KEYS
name; never the key or its hash), so that `GET /v1/usage?group_by=key` can group by it.

Null for jobs made with authentication off and for every job made before this revision (their key is not
known: they show as the group null).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 04:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('api_key', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('api_key')
