"""`llmhub serve | migrate`: the command line. Exit codes: 0 ok, 1 runtime failure, 2 bad config."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

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

    # Subcommands of `users` and `keys` take the config flags after their own arguments.
    config = argparse.ArgumentParser(add_help=False)
    _add_config_flags(config)
    users = commands.add_parser("users", help="manage user accounts")
    users_do = users.add_subparsers(dest="action", required=True)
    create = users_do.add_parser(
        "create", help="create a user (the first one is admin)", parents=[config]
    )
    create.add_argument("email")
    create.add_argument("--admin", action="store_true")
    create.add_argument("--name", default="", help="display name")
    create.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    users_do.add_parser("list", help="list users", parents=[config])
    set_role = users_do.add_parser(
        "set-role", help="change a user's role (ends their sessions)", parents=[config]
    )
    set_role.add_argument("email")
    set_role.add_argument("role", choices=["admin", "user", "pending"])
    reset = users_do.add_parser(
        "reset-password", help="set a new password (ends all sessions)", parents=[config]
    )
    reset.add_argument("email")
    reset.add_argument("--password-stdin", action="store_true")

    keys = commands.add_parser("keys", help="manage API keys")
    keys_do = keys.add_subparsers(dest="action", required=True)
    key_create = keys_do.add_parser(
        "create", help="create a key; prints only the key", parents=[config]
    )
    key_create.add_argument("--user", required=True, metavar="EMAIL")
    key_create.add_argument("--name", default="")
    key_create.add_argument("--expires-days", type=float, help="expire after this many days")
    key_create.add_argument("--models", help="comma-separated model allow-list")
    key_list = keys_do.add_parser("list", help="list a user's keys", parents=[config])
    key_list.add_argument("--user", required=True, metavar="EMAIL")
    key_revoke = keys_do.add_parser("revoke", help="revoke a key by id", parents=[config])
    key_revoke.add_argument("--user", required=True, metavar="EMAIL")
    key_revoke.add_argument("key_id")

    models = commands.add_parser("models", help="list, pull and delete models")
    models_do = models.add_subparsers(dest="action", required=True)
    models_do.add_parser("list", help="models the configured providers offer", parents=[config])
    pull = models_do.add_parser(
        "pull", help="pull an Ollama model, with progress", parents=[config]
    )
    pull.add_argument("name")
    delete = models_do.add_parser("delete", help="delete an Ollama model", parents=[config])
    delete.add_argument("name")
    for command in (pull, delete):
        command.add_argument(
            "--server", help="with several Ollama servers: this one only (default: every one)"
        )
    return parser


_SETTINGS_FLAGS = {
    "mode",
    "data_dir",
    "database_url",
    "log_level",
    "log_format",
    "host",
    "port",
    "migrate_on_start",
}


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {k: v for k, v in vars(args).items() if k in _SETTINGS_FLAGS}
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
    if not _apply_test_hashing(settings):
        return EXIT_CONFIG
    handler = {
        "serve": _serve,
        "migrate": _migrate,
        "users": _admin,
        "keys": _admin,
        "models": _models,
    }[args.command]
    return handler(settings, args)


def _apply_test_hashing(settings: Settings) -> bool:
    """LLMHUB_TEST_PASSWORD_HASHING=cheapest (set by our test suite): argon2's cheapest
    parameters, announced in the log; refused in aws mode, the production profile."""
    from argon2 import profiles

    from .auth import passwords

    if not passwords.cheap_hashing_requested():
        return True
    if settings.mode == "aws":
        print(
            f"llmhub: config error: {passwords.TEST_HASHING_VARIABLE} is for test suites; "
            "aws mode never weakens password hashing",
            file=sys.stderr,
        )
        return False
    passwords.use_parameters(profiles.CHEAPEST)
    return True


# -- serve ---------------------------------------------------------------------------------------


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import structlog
    import uvicorn

    from .app import create_app
    from .auth import passwords
    from .db import DatabaseUnavailable
    from .generations import FINISH_BUDGET
    from .migrations import MigrationError

    if passwords.cheap_hashing_requested():
        structlog.get_logger("llmhub.cli").warning(
            "password hashing uses argon2's cheapest parameters: for test suites only",
            variable=passwords.TEST_HASHING_VARIABLE,
        )
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
        forwarded_allow_ips=settings.trusted_proxies,
        # Past the generations' own window: answers stopped at its end are saved and their
        # `end` event sent before uvicorn cuts the connections that carry them. (uvicorn
        # declares an int but hands it to asyncio.wait_for, which takes any float.)
        timeout_graceful_shutdown=settings.shutdown_timeout + FINISH_BUDGET,  # type: ignore[arg-type]
    )
    server = _AnnouncingServer(config)
    # uvicorn re-raises the signal that stopped it once it has drained; a no-op handler lets
    # the lifespan below close the pool and stop the embedded PostgreSQL before we exit.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)

    async def run() -> None:
        async with app.router.lifespan_context(app):
            loop = asyncio.get_running_loop()
            # Running answers get their shutdown window from the signal on, while uvicorn
            # drains connections, rather than only after it has finished.
            server.on_exit = lambda: loop.call_soon_threadsafe(
                lambda: asyncio.ensure_future(app.state.generations.drain())
            )
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
        on_exit: Any = None

        def handle_exit(self, sig: int, frame: Any) -> None:
            first = not self.should_exit
            super().handle_exit(sig, frame)
            if first and self.on_exit is not None:
                self.on_exit()

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


@contextlib.asynccontextmanager
async def _database_url(settings: Settings) -> AsyncIterator[str]:
    """The configured database's URL, starting the embedded server for the block if needed."""
    from . import db

    if settings.database_url is not None:
        yield settings.database_url
        return
    embedded = db.EmbeddedPostgres(settings.data_path / "postgres")
    url = await asyncio.to_thread(embedded.start)
    try:
        yield url
    finally:
        embedded.stop()


@contextlib.asynccontextmanager
async def _database(settings: Settings, url: str | None = None) -> AsyncIterator[Any]:
    """A small pool on the configured database (starting the embedded one when needed)."""
    from . import db

    async with contextlib.AsyncExitStack() as stack:
        if url is None:
            url = await stack.enter_async_context(_database_url(settings))
        pool = await db.create_pool(
            url, min_size=1, max_size=2, connect_timeout=settings.db_connect_timeout
        )
        async with pool:
            yield pool


async def _run_migrate(settings: Settings, *, status_only: bool) -> int:
    from . import migrations

    async with _database(settings) as pool, pool.acquire() as conn:
        if status_only:
            for item in await migrations.status(conn):
                state = (
                    "pending"
                    if item.applied_at is None
                    else f"applied {item.applied_at:%Y-%m-%d %H:%M:%S%z}"
                )
                edited = "  EDITED AFTER APPLYING" if item.edited else ""
                print(f"{item.name:40} {state}{edited}")
            return 0
        applied = await migrations.migrate(conn, progress=_print_progress)
        print(f"{len(applied)} migration(s) applied" if applied else "database is up to date")
        return 0


def _print_progress(name: str, phase: str, ms: float | None) -> None:
    if phase == "applying":
        print(f"applying {name} ...", end="", flush=True)
    else:
        print(f" done ({ms:.0f} ms)", flush=True)


# -- users and keys ------------------------------------------------------------------------------


def _admin(settings: Settings, args: argparse.Namespace) -> int:
    from providers.errors import LLMHubError

    from .db import DatabaseUnavailable
    from .migrations import MigrationError

    password = None
    if getattr(args, "password_stdin", None) is not None and args.action in (
        "create",
        "reset-password",
    ):
        password = _read_password(args.password_stdin)
    try:
        return asyncio.run(_run_admin(settings, args, password))
    except (DatabaseUnavailable, MigrationError, LLMHubError) as exc:
        print(f"llmhub: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return EXIT_FAILURE


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        print("llmhub: passwords do not match", file=sys.stderr)
        raise SystemExit(EXIT_FAILURE)
    return first


async def _run_admin(settings: Settings, args: argparse.Namespace, password: str | None) -> int:
    from . import migrations

    async with _database_url(settings) as url, _database(settings, url) as pool:
        async with pool.acquire() as conn:
            await migrations.migrate(conn, progress=_print_progress_stderr)
        changed = await _run_admin_command(pool, args, password)
        if isinstance(changed, UUID):
            # Running servers drop what they cached about the user at once.
            from .invalidation import announce

            await announce(settings.bus_kind, url, settings.redis_url, f"user {changed}")
        return EXIT_FAILURE if changed is False else 0


async def _run_admin_command(
    pool: Any, args: argparse.Namespace, password: str | None
) -> UUID | bool:
    """Runs one users/keys command: False on failure, the user's id when servers must hear
    of the change, else True."""
    from datetime import UTC, datetime, timedelta

    from . import accounts
    from .repo import accounts as repo

    command = (args.command, args.action)
    if command == ("users", "create"):
        assert password is not None
        user = await accounts.create_user(
            pool,
            args.email,
            password,
            display_name=args.name,
            role="admin" if args.admin else "user",
        )
        print(f"created {user.email} ({user.role}) {user.id}")
    elif command == ("users", "list"):
        for user in await repo.list_users(pool):
            flags = " disabled" if user.disabled else ""
            print(f"{user.id}  {user.role:8} {user.email}{flags}")
    elif command == ("users", "set-role"):
        user = await accounts.find_user(pool, args.email)
        user = await accounts.update_user(pool, user.id, role=args.role)
        print(f"{user.email} is now {user.role}")
        return user.id
    elif command == ("users", "reset-password"):
        assert password is not None
        user = await accounts.find_user(pool, args.email)
        await accounts.set_password(pool, user.id, password)
        print(f"password reset for {user.email}; their sessions were ended")
        return user.id
    elif command == ("keys", "create"):
        user = await accounts.find_user(pool, args.user)
        expires = (
            datetime.now(UTC) + timedelta(days=args.expires_days) if args.expires_days else None
        )
        models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
        key, _ = await accounts.create_api_key(
            pool, user.id, name=args.name, expires_at=expires, allowed_models=models
        )
        print(key)  # alone on stdout, so `KEY=$(llmhub keys create ...)` captures it
    elif command == ("keys", "list"):
        user = await accounts.find_user(pool, args.user)
        for k in await repo.list_api_keys(pool, user.id):
            state = "revoked" if k.revoked_at else "active"
            print(f"{k.id}  {k.prefix}...  {state:8} {k.name}")
    elif command == ("keys", "revoke"):
        user = await accounts.find_user(pool, args.user)
        try:
            key_id = UUID(args.key_id)
        except ValueError:
            print(f"llmhub: {args.key_id!r} is not a key id", file=sys.stderr)
            return False
        if await repo.revoke_api_key(pool, user.id, key_id) is None:
            print("llmhub: no such key for that user", file=sys.stderr)
            return False
        print(f"revoked {args.key_id}")
        return user.id
    return True


def _print_progress_stderr(name: str, phase: str, ms: float | None) -> None:
    if phase == "applied":
        print(f"applied migration {name} ({ms:.0f} ms)", file=sys.stderr)


# -- models --------------------------------------------------------------------------------------


def _models(settings: Settings, args: argparse.Namespace) -> int:
    from providers.errors import LLMHubError

    try:
        return asyncio.run(_run_models(settings, args))
    except LLMHubError as exc:
        print(f"llmhub: {exc.message}", file=sys.stderr)
        return EXIT_FAILURE


async def _run_models(settings: Settings, args: argparse.Namespace) -> int:
    from providers.registry import build_registry

    registry = build_registry(settings)
    try:
        if args.action == "list":
            await registry.refresh()
            for name, health in registry.health().items():
                if not health.ok:
                    print(f"llmhub: {name} is unavailable: {health.detail}", file=sys.stderr)
            for model in sorted(registry.models(), key=lambda m: (m.provider, m.id)):
                size = f"{model.size_bytes / 1e9:6.1f} GB" if model.size_bytes else " " * 9
                where = f"  on {', '.join(model.locations)}" if model.locations else ""
                print(f"{model.provider:8} {size}  {model.id}{where}")
            return 0
        ollama = registry.providers.get("ollama")
        if ollama is None:
            print("llmhub: no Ollama is configured in this mode", file=sys.stderr)
            return EXIT_FAILURE
        on: dict[str, str] = {}
        if args.server:
            if not hasattr(ollama, "servers"):
                print("llmhub: --server picks one of several Ollama servers", file=sys.stderr)
                return EXIT_FAILURE
            on["server"] = args.server
        if args.action == "delete":
            await ollama.delete_model(args.name, **on)
            print(f"deleted {args.name}")
            return 0
        progress = _PullProgress(sys.stderr)
        async for step in ollama.pull_model(args.name, **on):
            status = f"{step.server}: {step.status}" if step.server else step.status
            progress.show(status, step.completed, step.total)
        progress.finish()
        print(f"pulled {args.name}")
        return 0
    finally:
        await registry.aclose()


class _PullProgress:
    """A bar redrawn in place on a terminal; one line per step elsewhere (logs, CI)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last: tuple[str, int] | None = None

    def show(self, status: str, completed: int | None, total: int | None) -> None:
        percent = int(100 * completed / total) if total and completed is not None else -1
        if self.tty:
            bar = ""
            if percent >= 0:
                filled = percent * 30 // 100
                bar = f" [{'#' * filled}{'.' * (30 - filled)}] {percent:3d}%"
            print(f"\r\033[K{status[:40]}{bar}", end="", file=self.stream, flush=True)
        elif (status, percent // 10) != self.last:  # each step, and every 10% within a step
            suffix = f" {percent}%" if percent >= 0 else ""
            print(f"{status}{suffix}", file=self.stream, flush=True)
        self.last = (status, percent // 10)

    def finish(self) -> None:
        if self.tty:
            print(file=self.stream)
