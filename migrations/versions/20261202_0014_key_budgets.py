"""Budgets: api_keys.budget_micros / budget_period (a key's budget, NULL = the QUOTA_BUDGET* default) and
jobs.cost_micros (`cost.amount` in millionths of its currency, so that SQL can SUM what a tenant spent and
has reserved, exactly, on SQLite and Postgres), with an index for the spend of a tenant since a time.

Jobs priced before this revision get `cost_micros` from their `cost` JSON.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 03:00:00+00:00
"""

import json
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _micros(cost: object) -> int | None:
    # Frozen here (not app.billing.to_micros), so this revision never changes with the app's code.
    if isinstance(cost, str):
        cost = json.loads(cost)
    if not isinstance(cost, dict):
        return None
    try:
        amount = Decimal(str(cost.get("amount")))
    except InvalidOperation:
        return None
    if not amount.is_finite():
        return None
    return int((amount * 1_000_000).to_integral_value(rounding=ROUND_HALF_UP))


def upgrade() -> None:
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('budget_micros', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('budget_period', sa.String(length=8), nullable=True))
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cost_micros', sa.BigInteger(), nullable=True))
        batch_op.create_index('ix_jobs_owner_finished_at', ['owner', 'finished_at'], unique=False)

    jobs = sa.table('jobs', sa.column('id', sa.String()), sa.column('cost', sa.JSON()),
                    sa.column('cost_micros', sa.BigInteger()))
    bind = op.get_bind()
    rows = bind.execute(sa.select(jobs.c.id, jobs.c.cost).where(jobs.c.cost.is_not(None))).all()
    for job_id, cost in rows:
        micros = _micros(cost)
        if micros is not None:
            bind.execute(jobs.update().where(jobs.c.id == job_id).values(cost_micros=micros))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_owner_finished_at')
        batch_op.drop_column('cost_micros')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_column('budget_period')
        batch_op.drop_column('budget_micros')
