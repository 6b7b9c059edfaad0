"""dashscope_uploads: the DashScope facade's temporary uploads (app/compat/dashscope/uploads.py): one row
per issued upload policy, filled by the file uploaded under it, kept 48 h.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 01:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table('dashscope_uploads',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('owner', sa.String(length=64), nullable=True),
    sa.Column('model', sa.String(length=64), nullable=False),
    sa.Column('upload_dir', sa.String(length=255), nullable=False),
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('policy_expires_at', UTC_DATETIME, nullable=False),
    sa.Column('key', sa.String(length=1024), nullable=True),
    sa.Column('content_type', sa.String(length=255), nullable=True),
    sa.Column('data', sa.LargeBinary(), nullable=True),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('created_at', UTC_DATETIME, nullable=False),
    sa.Column('uploaded_at', UTC_DATETIME, nullable=True),
    sa.Column('expires_at', UTC_DATETIME, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dashscope_uploads')),
    sa.UniqueConstraint('key', name=op.f('uq_dashscope_uploads_key'))
    )
    op.create_index('ix_dashscope_uploads_upload_dir', 'dashscope_uploads', ['upload_dir'], unique=False)
    op.create_index('ix_dashscope_uploads_expires_at', 'dashscope_uploads', ['expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_dashscope_uploads_expires_at', table_name='dashscope_uploads')
    op.drop_index('ix_dashscope_uploads_upload_dir', table_name='dashscope_uploads')
    op.drop_table('dashscope_uploads')
