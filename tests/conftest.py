from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from llmhub.migrations import migrate
from tests.pg import admin_url_from_env, reachable, throwaway_database

# Tests never touch the developer's real data dir or config file.
os.environ.pop("LLMHUB_DATABASE_URL", None)


@pytest.fixture(scope="session")
async def pg_admin_url() -> AsyncIterator[str]:
    """A PostgreSQL server to make throwaway databases on: the configured one, else embedded."""
    url = admin_url_from_env()
    if await reachable(url):
        yield url
        return
    from llmhub.db import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="llmhub-test-pg-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg")
        server.start()
        try:
            yield server.uri("postgres")
        finally:
            server.stop()


@pytest.fixture
async def empty_database_url(pg_admin_url: str) -> AsyncIterator[str]:
    """A brand-new database with nothing in it, dropped after the test."""
    async with throwaway_database(pg_admin_url) as url:
        yield url


@pytest.fixture(scope="session")
async def database_url(pg_admin_url: str) -> AsyncIterator[str]:
    """One migrated database for this test session (per xdist worker)."""
    async with throwaway_database(pg_admin_url) as url:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        yield url


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "data"
    path.mkdir()
    yield path


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("LLMHUB_") and key != "LLMHUB_TEST_DATABASE_URL":
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
