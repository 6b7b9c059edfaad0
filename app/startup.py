"""What every gateway process does before it serves: logging through the redactor, then migrations.

`wan-gateway serve`, `migrate`, `keys`, … (app/cli.py) and `wan-gateway worker` (app/workers/process.py)
both start here, so neither imports the other.
"""

from __future__ import annotations

import logging
import sys

from app.config import Settings
from app.logsafety import install


def configure_logging(settings: Settings) -> None:
    install(settings.secret_values())
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def migrate(settings: Settings) -> None:
    """Apply the database migrations (alembic upgrade head)."""
    from app.db.migrate import upgrade_head

    upgrade_head(settings.database_url)
    print(f"database at head: {settings.database_url.split('@')[-1]}")
