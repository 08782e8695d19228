"""The PostgreSQL pool: an external server from `database_url`, else an embedded private one."""

from __future__ import annotations

import asyncio
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
    """asyncpg's pool, telling how long each acquire waited and how many are waiting now
    (asyncpg has no public hook for either; `_acquire` is where every acquire goes)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waiting = 0  # acquirers waiting for a connection right now
        self.on_acquire: Callable[[float], None] | None = None  # seconds each acquire took

    async def _acquire(self, timeout: float | None) -> Any:
        started = time.perf_counter()
        self.waiting += 1
        try:
            return await super()._acquire(timeout)  # type: ignore[misc]
        finally:
            self.waiting -= 1
            if self.on_acquire is not None:
                self.on_acquire(time.perf_counter() - started)


async def create_pool(url: str, *, min_size: int, max_size: int, connect_timeout: float) -> Pool:
    """Connect with exponential back-off until `connect_timeout` seconds have passed."""
    deadline = time.monotonic() + connect_timeout
    delay = 0.1
    while True:
        try:
            return await Pool(
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
                timeout=min(10.0, connect_timeout),
                command_timeout=60,
            )
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


async def is_reachable(pool: asyncpg.Pool, timeout: float = 2.0) -> tuple[bool, str | None]:
    try:
        async with asyncio.timeout(timeout):
            async with pool.acquire() as conn:
                await conn.fetchval("SELECT 1")
        return True, None
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return False, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
