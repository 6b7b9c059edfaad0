"""Background loops: started by the lifespan, or alone with `wan-gateway worker` / `python -m app.workers`
(`process.py`). The command's arguments live here, apart from `process.py`, so that building the
`wan-gateway` parser does not import the whole gateway (every CLI command would pay ~1 s for it)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `wan-gateway worker`."""
    parser.add_argument(
        "--health-host", default="127.0.0.1", help="address of the health endpoints (default: %(default)s)"
    )
    parser.add_argument(
        "--health-port", type=int, default=None, help="serve /healthz, /readyz, /metrics here (default: none)"
    )
    parser.add_argument(
        "--no-migrate",
        action="store_true",
        help="do not apply migrations first; refuse to start when the database is not at head",
    )
