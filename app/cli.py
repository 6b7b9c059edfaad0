"""The `wan-gateway` command: `serve`, `worker`, `migrate`, `keys`, `sandbox`, `webhook-secret`, `openapi`,
and the client commands `generate`, `jobs`, `usage` (app/client/), which call a running gateway over HTTP."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import sys
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING

from app.client import generate as generate_cli
from app.client import jobs as jobs_cli
from app.client.common import version
from app.client.usage import add_arguments as add_usage_arguments
from app.client.usage import run as run_usage
from app.config import Settings
from app.startup import configure_logging, migrate, require_migrated

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession
from app.workers import add_arguments as add_worker_arguments


def cmd_serve(settings: Settings, host: str, port: int, migrate_first: bool) -> None:
    if not migrate_first:  # before importing the app: a refusal is quick
        require_migrated(settings, "serve")
    from app import serving
    from app.billing.cost import MixedCurrencies
    from app.billing.table import PriceTableError
    from app.main import create_app
    from app.wiring import pricing

    try:  # the lifespan would refuse them too, but inside uvicorn's traceback
        pricing(settings, settings.dashscope_base_url, accounts=settings.upstream_accounts)
    except (PriceTableError, MixedCurrencies) as exc:
        raise SystemExit(f"wan-gateway serve: {exc}") from None
    if migrate_first:
        migrate(settings)
    if "public_base_url" not in settings.model_fields_set:
        # Unset: clients on this machine reach us where we listen.
        reachable = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
        settings.public_base_url = f"http://{reachable}:{port}"
    serving.run(serving.gateway_config(create_app(settings), settings, host=host, port=port))


def cmd_sandbox(settings: Settings, host: str, port: int) -> None:
    """The sandbox alone, configured as the gateway's embedded one would be (`wiring.sandbox_config`),
    listening where the command line says (not SANDBOX_HOST/SANDBOX_PORT)."""
    from app.sandbox.extra import SandboxUnavailable, require_extra
    from app.wiring import sandbox_config

    try:
        require_extra("`wan-gateway sandbox` runs the built-in DashScope sandbox")
    except SandboxUnavailable as exc:
        raise SystemExit(f"wan-gateway sandbox: {exc}") from None
    from app.sandbox.server import serve_forever

    config = dataclasses.replace(sandbox_config(settings), host=host, port=port)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises SIGINT after a clean shutdown
        asyncio.run(serve_forever(config))


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


def cmd_keys(settings: Settings, args: argparse.Namespace) -> None:
    """Create, list and revoke client keys in the database (migrating it first if needed)."""
    from app.db.engine import create_engine, session_factory
    from app.db.migrate import upgrade_head
    from app.tenants import keys

    if args.keys_command == "generate":
        print(keys.generate_key())
        return
    upgrade_head(settings.database_url)

    async def run() -> None:
        engine = create_engine(settings.database_url)
        try:
            async with session_factory(engine).begin() as session:
                if args.keys_command == "create":
                    await _create_key(session, args)
                elif args.keys_command == "list":
                    from app.tenants.keys import keys_of_settings

                    default = _budget(settings, None, None)
                    print(_key_line("NAME", "TENANT", "PREFIX", "SOURCE", "ADMIN", "STATUS", "BUDGET"))
                    for entry in keys_of_settings(settings.gateway_api_keys, settings.gateway_admin_keys):
                        print(
                            _key_line(
                                entry.name, entry.name, entry.prefix, "env", entry.admin, "active", default
                            )
                        )
                    for row in await keys.list_keys(session, include_revoked=args.all):
                        status = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
                        budget = _budget(settings, row.budget_micros, row.budget_period)
                        print(_key_line(row.name, row.tenant, row.prefix, "cli", row.admin, status, budget))
                elif args.keys_command == "revoke":
                    row = await keys.revoke(session, args.name)
                    print(f"revoked {row.name} ({row.prefix}…); it stops working within AUTH_CACHE_TTL_S")
        finally:
            await engine.dispose()

    try:
        asyncio.run(run())
    except keys.KeyProblem as exc:
        raise SystemExit(f"wan-gateway keys: {exc}") from None


def _budget(settings: Settings, micros: int | None, period: str | None) -> str:
    """A key's budget as `keys list` shows it: `3.00 CNY/day`, `none`; the default's marked so."""
    from app.billing.cost import from_micros, resolve_region, to_micros
    from app.billing.table import REGION_CURRENCY

    own = micros is not None or period is not None
    amount = micros if micros is not None else to_micros(settings.quota_budget)
    if not amount:
        return "none" if own else "none (default)"
    currency = REGION_CURRENCY.get(resolve_region(settings.dashscope_region, settings.dashscope_base_url), "")
    shown = f"{from_micros(amount)} {currency}/{period or settings.quota_budget_period}"
    return shown if own else f"{shown} (default)"


def _money(value: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{value!r} is not a decimal amount (e.g. 3 or 12.50)") from None
    if not amount.is_finite() or amount < 0:
        raise argparse.ArgumentTypeError(f"{value!r}: the budget must be 0 (none) or more")
    return amount


async def _create_key(session: AsyncSession, args: argparse.Namespace) -> None:
    from app.billing.cost import to_micros
    from app.tenants import keys

    row, key = await keys.create(
        session,
        args.name,
        tenant=args.tenant,
        admin=args.admin,
        max_active_jobs=args.max_active_jobs,
        submits_per_minute=args.submits_per_minute,
        video_seconds_per_day=args.video_seconds_per_day,
        budget_micros=None if args.budget is None else to_micros(args.budget),
        budget_period=args.budget_period,
    )
    print(key)
    role = ", admin" if row.admin else ""
    print(f"created {row.name} (tenant {row.tenant}{role}); the key is shown only now", file=sys.stderr)


def _key_line(
    name: str, tenant: str, prefix: str, source: str, admin: bool | str, status: str, budget: str
) -> str:
    return f"{name:24} {tenant:20} {prefix:8} {source:6} {admin!s:5} {status:18} {budget}"


def add_keys_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="keys_command", required=True)
    create = sub.add_parser("create", help="create a key and print it (once)")
    create.add_argument("name", help="the key's name")
    create.add_argument("--tenant", help="whose jobs it sees (default: the name; share one to rotate keys)")
    create.add_argument("--admin", action="store_true", help="may also read /metrics and /v1/admin/*")
    create.add_argument("--max-active-jobs", type=int, help="quota override (default QUOTA_MAX_ACTIVE_JOBS)")
    create.add_argument("--submits-per-minute", type=int, help="quota override (QUOTA_SUBMITS_PER_MINUTE)")
    create.add_argument(
        "--video-seconds-per-day", type=int, help="quota override (QUOTA_VIDEO_SECONDS_PER_DAY)"
    )
    create.add_argument(
        "--budget",
        type=_money,
        metavar="AMOUNT",
        help="money its jobs may cost per period, in the region's currency (the jobs' cost.currency); "
        "0 = none (default QUOTA_BUDGET)",
    )
    create.add_argument(
        "--budget-period",
        choices=("day", "month", "total"),
        help="the budget's period: from UTC midnight, from the 1st (UTC), or all time "
        "(default QUOTA_BUDGET_PERIOD)",
    )
    listing = sub.add_parser("list", help="list keys (configured and created; never the keys themselves)")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    revoke = sub.add_parser("revoke", help="revoke a created key")
    revoke.add_argument("name", help="the key's name or id")
    sub.add_parser("generate", help="print a random key for GATEWAY_API_KEYS (stores nothing)")


def cmd_openapi(output: Path | None) -> None:
    """The OpenAPI document on stdout, or into `output` (`make openapi`: openapi/openapi.json)."""
    from app.main import create_app

    schema = create_app(Settings(_env_file=None)).openapi()
    text = json.dumps(schema, indent=2, sort_keys=False, ensure_ascii=False) + "\n"
    if output is None:
        sys.stdout.write(text)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print(f"wrote {output}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="wan-gateway", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve",
        help="apply migrations, then serve the API (and the job loop)",
        description="Apply the database migrations, then serve the API, the console and (unless "
        "WORKERS_ENABLED=false) the job loops. Every setting comes from the environment "
        "(docs/CONFIGURATION.md).",
    )
    host, port = (Settings.model_fields[name].default for name in ("host", "port"))
    serve.add_argument("--host", help=f"address to listen on (default: $HOST, else {host})")
    serve.add_argument("--port", type=int, help=f"port to listen on (default: $PORT, else {port})")
    serve.add_argument(
        "--no-migrate",
        action="store_true",
        help="do not apply migrations first (default: apply them); refuse to start when the database is "
        "not at head",
    )
    worker = sub.add_parser(
        "worker",
        help="run the job poller and webhook dispatcher without the API",
        description="The job poller and webhook dispatcher without the API (migrating first).",
    )
    add_worker_arguments(worker)
    sub.add_parser("migrate", help="apply database migrations (alembic upgrade head)")
    add_keys_arguments(sub.add_parser("keys", help="create, list and revoke client API keys"))
    sandbox = sub.add_parser("sandbox", help="run the DashScope emulator alone")
    sandbox.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    sandbox.add_argument("--port", type=int, default=8001, help="port to listen on (default: %(default)s)")
    sub.add_parser("webhook-secret", help="print the webhook signing secret(s) receivers verify with")
    generate_cli.add_arguments(
        sub.add_parser(
            "generate",
            help="make a video from an image: submit, follow with a progress bar, save the MP4",
            description=generate_cli.DESCRIPTION,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    jobs_cli.add_arguments(sub.add_parser("jobs", help="list, show, cancel and download a gateway's jobs"))
    add_usage_arguments(sub.add_parser("usage", help="what finished jobs cost (GET /v1/usage of a gateway)"))
    openapi = sub.add_parser("openapi", help="print the OpenAPI document (or write it with --output)")
    openapi.add_argument("--output", type=Path, help="write it to this file (default: print to stdout)")
    args = parser.parse_args(argv)

    if args.command == "openapi":
        cmd_openapi(args.output)
        return
    if args.command == "usage":
        sys.exit(run_usage(args))
    if args.command == "generate":
        sys.exit(generate_cli.run(args))
    if args.command == "jobs":
        sys.exit(jobs_cli.run(args))
    settings = Settings()
    if args.command == "worker":
        from app.workers.process import run as run_worker

        run_worker(settings, args)
        return
    configure_logging(settings)
    if args.command == "migrate":
        migrate(settings)
    elif args.command == "serve":
        cmd_serve(settings, args.host or settings.host, args.port or settings.port, not args.no_migrate)
    elif args.command == "sandbox":
        cmd_sandbox(settings, args.host, args.port)
    elif args.command == "keys":
        cmd_keys(settings, args)
    elif args.command == "webhook-secret":
        cmd_webhook_secret(settings)


if __name__ == "__main__":
    main()
