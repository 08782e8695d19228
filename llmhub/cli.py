"""`llmhub serve | migrate`: the command line. Exit codes: 0 ok, 1 runtime failure, 2 bad config."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import ConfigError, Settings, load_settings

EXIT_FAILURE = 1
EXIT_CONFIG = 2


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML file (default: ./llmhub.toml if present)")
    parser.add_argument("--mode", help="local | hybrid | aws")
    parser.add_argument("--data-dir", dest="data_dir")
    parser.add_argument("--database-url", dest="database_url")
    parser.add_argument("--log-level", dest="log_level")
    parser.add_argument("--log-format", dest="log_format", help="auto | console | json")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmhub", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the web server")
    _add_config_flags(serve)
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument(
        "--no-migrate",
        dest="migrate_on_start",
        action="store_const",
        const=False,
        help="do not apply pending migrations at startup",
    )

    migrate = commands.add_parser("migrate", help="apply pending database migrations")
    _add_config_flags(migrate)
    migrate.add_argument("--status", action="store_true", help="list migrations, apply nothing")
    return parser


_NOT_SETTINGS = {"command", "config", "status"}


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {k: v for k, v in vars(args).items() if k not in _NOT_SETTINGS}
    return load_settings(args.config, overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
    except ConfigError as exc:
        print(f"llmhub: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    from .observability import configure_logging

    configure_logging(settings.log_level, settings.json_logs)
    handler = {"serve": _serve, "migrate": _migrate}[args.command]
    return handler(settings, args)


# -- serve ---------------------------------------------------------------------------------------


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app
    from .db import DatabaseUnavailable
    from .migrations import MigrationError

    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        lifespan="off",  # the lifespan runs around the server below, so startup errors are ours
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=True,
        forwarded_allow_ips="*" if settings.trust_proxy_headers else "127.0.0.1",
        timeout_graceful_shutdown=settings.shutdown_timeout,
    )
    server = _AnnouncingServer(config)
    # uvicorn re-raises the signal that stopped it once it has drained; a no-op handler lets
    # the lifespan below close the pool and stop the embedded PostgreSQL before we exit.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)

    async def run() -> None:
        async with app.router.lifespan_context(app):
            await server.serve()

    try:
        with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
            runner.run(run())
    except (DatabaseUnavailable, MigrationError) as exc:
        print(f"llmhub: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except SystemExit as exc:  # uvicorn exits when it cannot bind
        return int(exc.code or EXIT_FAILURE)
    return 0


def _make_announcing_server() -> Any:
    import uvicorn

    class AnnouncingServer(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:
                host, port = self.servers[0].sockets[0].getsockname()[:2]
                shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
                print(f"llmhub serving on http://{shown}:{port}", flush=True)

    return AnnouncingServer


def _AnnouncingServer(config: Any) -> Any:
    return _make_announcing_server()(config)


# -- migrate -------------------------------------------------------------------------------------


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from .db import DatabaseUnavailable
    from .migrations import MigrationError

    try:
        return asyncio.run(_run_migrate(settings, status_only=args.status))
    except (DatabaseUnavailable, MigrationError) as exc:
        print(f"llmhub: {exc}", file=sys.stderr)
        return EXIT_FAILURE


async def _run_migrate(settings: Settings, *, status_only: bool) -> int:
    from . import db, migrations

    embedded = None
    url = settings.database_url
    if url is None:
        embedded = db.EmbeddedPostgres(settings.data_path / "postgres")
        url = await asyncio.to_thread(embedded.start)
    try:
        pool = await db.create_pool(
            url, min_size=1, max_size=1, connect_timeout=settings.db_connect_timeout
        )
        async with pool, pool.acquire() as conn:
            if status_only:
                for item in await migrations.status(conn):
                    state = (
                        "pending"
                        if item.applied_at is None
                        else f"applied {item.applied_at:%Y-%m-%d %H:%M:%S%z}"
                    )
                    print(
                        f"{item.name:40} {state}{'  EDITED AFTER APPLYING' if item.edited else ''}"
                    )
                return 0
            applied = await migrations.migrate(conn, progress=_print_progress)
            print(f"{len(applied)} migration(s) applied" if applied else "database is up to date")
            return 0
    finally:
        if embedded is not None:
            embedded.stop()


def _print_progress(name: str, phase: str, ms: float | None) -> None:
    if phase == "applying":
        print(f"applying {name} ...", end="", flush=True)
    else:
        print(f" done ({ms:.0f} ms)", flush=True)
