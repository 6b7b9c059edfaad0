"""Fair webhook dispatch: each delivery's origin (the unit of per-endpoint concurrency), an index to
count the deliveries in flight and one to group the due ones by origin.

Existing rows get their origin from their URL here, with a frozen copy of `app.webhooks.origins`.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 17:40:00+00:00
"""

from collections.abc import Sequence

import httpx
import sqlalchemy as sa
from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _origin_of(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        return url
    host = parsed.raw_host.decode("ascii", "replace").rstrip(".")
    if not host:
        return url
    if ":" in host:
        host = f"[{host}]"
    port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme, 0)
    return f"{parsed.scheme}://{host}:{port}"


def upgrade() -> None:
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('origin', sa.String(length=2048), nullable=True))
    deliveries = sa.table('webhook_deliveries', sa.column('url', sa.Text()), sa.column('origin', sa.String()))
    connection = op.get_bind()
    # One UPDATE per distinct URL: webhook URLs are few, deliveries many.
    for (url,) in connection.execute(sa.select(deliveries.c.url).distinct()).all():
        connection.execute(
            sa.update(deliveries).where(deliveries.c.url == url).values(origin=_origin_of(url))
        )
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.alter_column('origin', existing_type=sa.String(length=2048), nullable=False)
        batch_op.create_index(
            'ix_webhook_deliveries_status_lease_expires_at', ['status', 'lease_expires_at'], unique=False
        )
        batch_op.create_index(
            'ix_webhook_deliveries_status_origin_next_attempt_at',
            ['status', 'origin', 'next_attempt_at'],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_deliveries_status_origin_next_attempt_at')
        batch_op.drop_index('ix_webhook_deliveries_status_lease_expires_at')
        batch_op.drop_column('origin')
