"""What every gateway process does before it serves: logging (LOG_FORMAT, through the redactor), then
migrations.

`wan-gateway serve`, `migrate`, `keys`, … (app/cli.py) and `wan-gateway worker` (app/workers/process.py)
both start here, so neither imports the other.
"""

from __future__ import annotations

import logging
import sys

from app.config import Settings
from app.logformat import formatter
from app.logsafety import install


def configure_logging(settings: Settings) -> None:
    """Every record through the redactor (which also stamps the `logcontext` ids on it), written to
    stderr in LOG_FORMAT (app/logformat.py)."""
    install(settings.secret_values())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(settings.log_format))
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler])


def migrate(settings: Settings) -> None:
    """Apply the database migrations (alembic upgrade head)."""
    from app.db.migrate import upgrade_head

    upgrade_head(settings.database_url)
    print(f"database at head: {settings.database_url.split('@')[-1]}")
