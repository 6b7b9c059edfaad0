"""The `wan-gateway` command: `serve`, `worker`, `migrate`, `sandbox`, `webhook-secret`, `openapi`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from app.config import Settings
from app.workers.process import add_arguments as add_worker_arguments
from app.workers.process import run as run_worker


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def cmd_migrate(settings: Settings) -> None:
    from app.db.migrate import upgrade_head

    upgrade_head(settings.database_url)
    print(f"database at head: {settings.database_url.split('@')[-1]}")


def cmd_serve(settings: Settings, host: str, port: int, migrate: bool) -> None:
    import uvicorn

    from app.main import create_app

    if migrate:
        cmd_migrate(settings)
    if "public_base_url" not in settings.model_fields_set:
        # Unset: clients on this machine reach us where we listen.
        reachable = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
        settings.public_base_url = f"http://{reachable}:{port}"
    uvicorn.run(create_app(settings), host=host, port=port, log_level=settings.log_level.lower())


def cmd_sandbox(settings: Settings, host: str, port: int) -> None:
    from app.providers.sandbox.config import SandboxConfig
    from app.providers.sandbox.server import serve_forever

    settings.sandbox_host, settings.sandbox_port = host, port
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises SIGINT after a clean shutdown
        asyncio.run(serve_forever(SandboxConfig.from_settings(settings)))


def cmd_webhook_secret(settings: Settings) -> None:
    """Print the signing secret(s): the configured ones, or the one generated and kept in the database."""
    from app.db.engine import create_engine, session_factory
    from app.webhooks.secrets import SecretSource

    async def secrets() -> list[str]:
        engine = create_engine(settings.database_url)
        try:
            return await SecretSource(session_factory(engine), settings.webhook_secret).get()
        finally:
            await engine.dispose()

    print("\n".join(asyncio.run(secrets())))


def cmd_openapi(output: Path) -> None:
    from app.main import create_app

    schema = create_app(Settings(_env_file=None)).openapi()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(schema, indent=2, sort_keys=False, ensure_ascii=False) + "\n")
    print(f"wrote {output}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="wan-gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="apply migrations, then serve the API (and the job loop)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--no-migrate", action="store_true", help="do not apply migrations first")
    worker = sub.add_parser("worker", help="run the job poller and webhook dispatcher without the API")
    add_worker_arguments(worker)
    sub.add_parser("migrate", help="apply database migrations (alembic upgrade head)")
    sandbox = sub.add_parser("sandbox", help="run the DashScope emulator alone")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8001)
    sub.add_parser("webhook-secret", help="print the webhook signing secret(s) receivers verify with")
    openapi = sub.add_parser("openapi", help="write the OpenAPI document")
    openapi.add_argument("--output", type=Path, default=Path("openapi/openapi.json"))
    args = parser.parse_args(argv)

    if args.command == "openapi":
        cmd_openapi(args.output)
        return
    settings = Settings()
    if args.command == "worker":
        run_worker(settings, args)
        return
    configure_logging(settings)
    if args.command == "migrate":
        cmd_migrate(settings)
    elif args.command == "serve":
        cmd_serve(settings, args.host, args.port, not args.no_migrate)
    elif args.command == "sandbox":
        cmd_sandbox(settings, args.host, args.port)
    elif args.command == "webhook-secret":
        cmd_webhook_secret(settings)


if __name__ == "__main__":
    main()
