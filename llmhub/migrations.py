"""Forward-only SQL migrations: `sql/NNNN_name.sql`, applied in order, one transaction each.

Runners serialise on a PostgreSQL advisory lock, so replicas starting together apply each
migration exactly once. An applied file that was edited afterwards is refused, not re-run.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from .resources import SQL_DIR

_FILE_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# Any constant works; it only has to be the same for every llmhub process.
_LOCK_KEY = 0x6C6C6D687562  # "llmhub"


class MigrationError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Migration:
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    name: str
    applied_at: datetime | None
    edited: bool


def load_migrations(directory: Path = SQL_DIR) -> list[Migration]:
    files = sorted(p for p in directory.glob("*.sql") if _FILE_NAME.match(p.name))
    numbers = [_FILE_NAME.match(p.name).group(1) for p in files]  # type: ignore[union-attr]
    if len(set(numbers)) != len(numbers):
        raise MigrationError(f"two migrations share a number in {directory}")
    return [Migration(p.stem, p.read_text()) for p in files]


_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name text PRIMARY KEY,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""

Conn = asyncpg.Connection | PoolConnectionProxy
Progress = Callable[[str, str, float | None], None]


async def migrate(
    conn: Conn,
    migrations: list[Migration] | None = None,
    progress: Progress | None = None,
) -> list[str]:
    """Apply pending migrations; returns the names applied. `progress(name, phase, ms)`."""
    migrations = load_migrations() if migrations is None else migrations
    applied_names: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(_CREATE_TABLE)
        applied = await _applied_checksums(conn)
        _refuse_edited(migrations, applied)
        for migration in migrations:
            if migration.name in applied:
                continue
            if progress:
                progress(migration.name, "applying", None)
            started = time.perf_counter()
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)",
                    migration.name,
                    migration.checksum,
                )
            applied_names.append(migration.name)
            if progress:
                progress(migration.name, "applied", (time.perf_counter() - started) * 1000)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_names


async def status(conn: Conn, migrations: list[Migration] | None = None) -> list[MigrationStatus]:
    migrations = load_migrations() if migrations is None else migrations
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    rows = (
        {r["name"]: r for r in await conn.fetch("SELECT * FROM schema_migrations")}
        if exists
        else {}
    )
    return [
        MigrationStatus(
            m.name,
            rows[m.name]["applied_at"] if m.name in rows else None,
            m.name in rows and rows[m.name]["checksum"] != m.checksum,
        )
        for m in migrations
    ]


async def _applied_checksums(conn: Conn) -> dict[str, str]:
    return {r["name"]: r["checksum"] for r in await conn.fetch("SELECT * FROM schema_migrations")}


def _refuse_edited(migrations: list[Migration], applied: dict[str, str]) -> None:
    for migration in migrations:
        if migration.name in applied and applied[migration.name] != migration.checksum:
            raise MigrationError(
                f"migration {migration.name}.sql was edited after it was applied; "
                "migrations are forward-only: restore the file and add a new migration instead"
            )
