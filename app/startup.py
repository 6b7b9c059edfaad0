"""What every gateway process does before it serves: logging (LOG_FORMAT, through the redactor), then
migrations (or, with `--no-migrate`, the check that they were applied).

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


def require_migrated(settings: Settings, command: str) -> None:
    """`--no-migrate`: stop with what to do when the database is not at head (rather than failing on the
    first query with "no such table")."""
    from sqlalchemy.exc import SQLAlchemyError

    from app.db.migrate import unmigrated
    from app.logsafety import redact

    where = settings.database_url.split("@")[-1]
    try:
        problem = unmigrated(settings.database_url)
    except (OSError, SQLAlchemyError) as exc:
        raise SystemExit(redact(f"wan-gateway {command}: cannot read the schema of {where}: {exc}")) from None
    if problem is not None:
        raise SystemExit(
            f"wan-gateway {command}: the database {where} {problem}. Run `wan-gateway migrate` first, "
            f"or start without --no-migrate."
        )
