"""Idempotency keys (per tenant, expiring) and result reuse (jobs.cache_key, jobs.source_job_id).

The old UNIQUE (owner, idempotency_key) on jobs goes: keys now live in `idempotency_keys`, where they expire
and may be used again; jobs.idempotency_key stays, for information.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 01:51:15.415292+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here rather than imported from the app, so this revision never changes with the app's code.
UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table('idempotency_keys',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('job_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', UTC_DATETIME, nullable=False),
    sa.Column('expires_at', UTC_DATETIME, nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_idempotency_keys_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idempotency_keys')),
    sa.UniqueConstraint('tenant', 'key', name='uq_idempotency_keys_tenant_key')
    )
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.create_index('ix_idempotency_keys_expires_at', ['expires_at'], unique=False)

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cache_key', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('source_job_id', sa.String(length=40), nullable=True))
        batch_op.drop_constraint('uq_jobs_owner_idempotency_key', type_='unique')
        batch_op.create_index('ix_jobs_cache_key_owner', ['cache_key', 'owner'], unique=False)
        batch_op.create_index('ix_jobs_source_job_id', ['source_job_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_source_job_id')
        batch_op.drop_index('ix_jobs_cache_key_owner')
        batch_op.create_unique_constraint('uq_jobs_owner_idempotency_key', ['owner', 'idempotency_key'])
        batch_op.drop_column('source_job_id')
        batch_op.drop_column('cache_key')

    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.drop_index('ix_idempotency_keys_expires_at')

    op.drop_table('idempotency_keys')
