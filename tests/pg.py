"""Throwaway PostgreSQL databases for tests: one per use, dropped afterwards, never shared."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def with_database(url: str, name: str) -> str:
    """`url` naming database `name` (its host, port and query, e.g. `?host=<socket dir>`, kept)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def database_name(url: str) -> str:
    """The database a URL names: its path, never its query (an embedded server's URL ends in
    `?host=<socket directory>`, whose own last path segment is not the database)."""
    return unquote(urlsplit(url).path.lstrip("/"))


async def reachable(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


def admin_url_from_env() -> str:
    return os.environ.get("LLMHUB_TEST_DATABASE_URL", DEFAULT_ADMIN_URL)


@contextlib.asynccontextmanager
async def throwaway_database(
    admin_url: str, prefix: str = "llmhub_test", template: str | None = None
) -> AsyncIterator[str]:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url)
    try:
        clone = f' TEMPLATE "{template}"' if template else ""
        await admin.execute(f'CREATE DATABASE "{name}"{clone}')
        yield with_database(admin_url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
