"""The PostgreSQL pool: an external server from `database_url`, else an embedded private one."""

from __future__ import annotations

import asyncio
import contextlib
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import structlog

log = structlog.get_logger("llmhub.db")

EMBEDDED_DATABASE = "llmhub"


class DatabaseUnavailable(Exception):
    """PostgreSQL could not be reached in the time allowed; the message names where, never how."""


def describe_url(url: str) -> str:
    """host:port/dbname of a DSN, for messages: never the user's password."""
    parts = urlsplit(url)
    host = parts.hostname or "local socket"
    port = f":{parts.port}" if parts.port else ""
    return f"{host}{port}{parts.path or ''}"


@dataclass
class EmbeddedPostgres:
    """A private PostgreSQL under data_dir (pgserver), reused across restarts."""

    pgdata: Path
    _server: Any = field(default=None, repr=False)

    def start(self) -> str:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers); its fallback is fine.
            warnings.simplefilter("ignore")
            import pgserver  # imported here: only the embedded profile pays for it

            self.pgdata.mkdir(parents=True, exist_ok=True)
            self._server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
        exists = self._server.psql(
            f"SELECT 1 FROM pg_database WHERE datname = '{EMBEDDED_DATABASE}';"  # noqa: S608
        )
        if "(1 row)" not in exists:
            self._server.psql(f"CREATE DATABASE {EMBEDDED_DATABASE};")
        return self.uri(EMBEDDED_DATABASE)

    def uri(self, database: str) -> str:
        uri: str = self._server.get_uri(database)
        return uri

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


async def _init_connection(conn: asyncpg.Connection) -> None:
    import json

    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


class Pool(asyncpg.Pool):
    """asyncpg's pool with a default acquire timeout, so that a frozen database or a pool held by
    slow queries fails a request within seconds instead of queueing it for good; and telling how
    long each acquire waited and how many are waiting now (asyncpg has no public hook for either;
    `_acquire` is where every acquire goes)."""

    acquire_timeout: float | None = None
    readiness: ReadinessProbe | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waiting = 0  # acquirers waiting for a connection right now
        self.on_acquire: Callable[[float], None] | None = None  # seconds each acquire took

    def acquire(self, *, timeout: float | None = None) -> Any:
        return super().acquire(timeout=self.acquire_timeout if timeout is None else timeout)

    async def _acquire(self, timeout: float | None) -> Any:
        started = time.perf_counter()
        self.waiting += 1
        try:
            return await super()._acquire(timeout)  # type: ignore[misc]
        finally:
            self.waiting -= 1
            if self.on_acquire is not None:
                self.on_acquire(time.perf_counter() - started)


async def create_pool(
    url: str,
    *,
    min_size: int,
    max_size: int,
    connect_timeout: float,
    acquire_timeout: float | None = None,
    statement_timeout: float | None = None,
) -> Pool:
    """Connect with exponential back-off until `connect_timeout` seconds have passed.

    `statement_timeout` bounds every query both ways: the server abandons it and the client
    stops waiting (a frozen server never answers its own timeout). `acquire_timeout` bounds the
    wait for a connection, a new one's connect included."""
    deadline = time.monotonic() + connect_timeout
    delay = 0.1
    server_settings = {}
    if statement_timeout is not None:
        server_settings["statement_timeout"] = str(max(1, round(statement_timeout * 1000)))
    while True:
        try:
            pool = Pool(
                url,
                min_size=min_size,
                max_size=max_size,
                max_queries=50000,
                max_inactive_connection_lifetime=300.0,
                connect=None,
                setup=None,
                init=_init_connection,
                reset=None,
                loop=None,
                connection_class=asyncpg.Connection,
                record_class=asyncpg.Record,
                timeout=min(10.0, connect_timeout, acquire_timeout or connect_timeout),
                command_timeout=statement_timeout + 1 if statement_timeout else 60,
                server_settings=server_settings,
            )
            await pool
            pool.acquire_timeout = acquire_timeout
            pool.readiness = ReadinessProbe(pool)
            return pool
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
                raise DatabaseUnavailable(
                    f"cannot connect to PostgreSQL at {describe_url(url)}: "
                    f"{type(exc).__name__}: {exc} (gave up after {connect_timeout:g}s)"
                ) from None
            log.warning(
                "database not reachable yet, retrying",
                target=describe_url(url),
                error=str(exc),
                retry_in=round(delay, 2),
            )
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, 2.0)


# What a database that is down, restarting, frozen or overloaded raises: the request may be
# retried later (503), it is not a bug (500).
_OUTAGE_ERRORS = (
    asyncpg.PostgresConnectionError,  # class 08, ConnectionDoesNotExistError among them
    asyncpg.exceptions.OperatorInterventionError,  # 57: shutting down, starting, query cancelled
    asyncpg.exceptions.InsufficientResourcesError,  # 53: too many connections, disk full
)
_ASYNCPG_DIR = str(Path(asyncpg.__file__).parent)


def is_outage(exc: BaseException) -> bool:
    """True for an error that means "the database is unavailable right now"."""
    if isinstance(exc, _OUTAGE_ERRORS):
        return True
    if isinstance(exc, OSError | TimeoutError):  # refused, reset, or a timeout: from asyncpg?
        return _raised_in_asyncpg(exc)
    return False


def _raised_in_asyncpg(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.startswith(_ASYNCPG_DIR):
            return True
        tb = tb.tb_next
    context = exc.__cause__ or exc.__context__
    return context is not None and context is not exc and _raised_in_asyncpg(context)


def describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class ReadinessProbe:
    """`SELECT 1` through the pool, answered within `timeout` whatever the database does: a
    probe still waiting is left to finish (or time out) in the background, and later checks
    share it rather than piling up more."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._probe: asyncio.Task[None] | None = None

    async def _select_one(self) -> None:
        async with self.pool.acquire() as conn:
            await conn.fetchval("SELECT 1")

    async def check(self, timeout: float) -> tuple[bool, str | None]:
        if self._probe is None or self._probe.done():
            self._probe = asyncio.ensure_future(self._select_one())
            self._probe.add_done_callback(_consume)
        probe = self._probe
        done, _ = await asyncio.wait([probe], timeout=timeout)
        if not done:
            return False, f"no answer within {timeout:g}s"
        exc = probe.exception()
        return (True, None) if exc is None else (False, describe_error(exc))


def _consume(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: a failed probe is an answer, not an unhandled error


async def is_reachable(pool: asyncpg.Pool, timeout: float = 2.0) -> tuple[bool, str | None]:
    probe = getattr(pool, "readiness", None) or ReadinessProbe(pool)
    return await probe.check(timeout)


@contextlib.asynccontextmanager
async def migration_connection(url: str, connect_timeout: float) -> Any:
    """A connection of its own for migrations: no statement timeout, which a migration of a
    large table may well need."""
    conn = await asyncpg.connect(
        url, timeout=min(10.0, connect_timeout), server_settings={"statement_timeout": "0"}
    )
    try:
        yield conn
    finally:
        await conn.close()
