from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import argon2
import asyncpg
import pytest
import redis.asyncio as aioredis

from llmhub.auth import passwords
from llmhub.config import Settings
from llmhub.migrations import migrate
from tests.hub import Hub, hub_settings, running_hub
from tests.pg import admin_url_from_env, database_name, reachable, throwaway_database
from tests.redis_server import private_redis

# Variables that steer the test run itself; every other LLMHUB_* is a setting, and tests
# never inherit the developer's settings (module-scoped hubs start before any fixture runs).
TEST_CONTROLS = {
    "LLMHUB_TEST_DATABASE_URL",
    "LLMHUB_REQUIRE_BROWSER",
    passwords.TEST_HASHING_VARIABLE,
}
for _name in [k for k in os.environ if k.startswith("LLMHUB_") and k not in TEST_CONTROLS]:
    del os.environ[_name]

# argon2's cheapest parameters, in this process and in every `llmhub` a test starts: the
# production ones cost ~0.2 s of CPU a hash, on purpose, and the suite hashes hundreds.
passwords.use_parameters(argon2.profiles.CHEAPEST)
os.environ[passwords.TEST_HASHING_VARIABLE] = "cheapest"


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
            url = server.uri("postgres")
            await _throwaway_durability(url)
            yield url
        finally:
            server.stop()


async def _throwaway_durability(url: str) -> None:
    """This server's data lives as long as the test run: no fsync (every CREATE DATABASE from
    the template would otherwise wait for the disk), as for any throwaway test cluster."""
    conn = await asyncpg.connect(url)
    try:
        for name in ("fsync", "synchronous_commit", "full_page_writes"):
            await conn.execute(f"ALTER SYSTEM SET {name} = off")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


@pytest.fixture
async def empty_database_url(pg_admin_url: str) -> AsyncIterator[str]:
    """A brand-new database with nothing in it, dropped after the test."""
    async with throwaway_database(pg_admin_url) as url:
        yield url


@pytest.fixture(scope="session")
async def migrated_template(pg_admin_url: str) -> AsyncIterator[str]:
    """A migrated database to clone from; never used directly (per xdist worker)."""
    async with throwaway_database(pg_admin_url, prefix="llmhub_template") as url:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        yield url


@pytest.fixture
async def database_url(pg_admin_url: str, migrated_template: str) -> AsyncIterator[str]:
    """A fresh, migrated database of the test's own (a cheap copy of the template)."""
    template = database_name(migrated_template)
    async with throwaway_database(pg_admin_url, template=template) as url:
        yield url


@pytest.fixture(scope="module")
async def module_database_url(pg_admin_url: str, migrated_template: str) -> AsyncIterator[str]:
    """One migrated database shared by a test module that runs one hub for all its tests."""
    template = database_name(migrated_template)
    async with throwaway_database(pg_admin_url, template=template) as url:
        yield url


@pytest.fixture
def settings(database_url: str, data_dir: Path) -> Settings:
    """Settings for an in-process hub: its own database, no Ollama reachable."""
    return hub_settings(database_url, data_dir, ollama={"url": "http://127.0.0.1:9"})


@pytest.fixture
async def hub(settings: Settings) -> AsyncIterator[Hub]:
    async with running_hub(settings) as running:
        yield running


@pytest.fixture(scope="session")
async def redis_server() -> AsyncIterator[str]:
    """This session's (xdist worker's) own redis-server: never a shared one."""
    async with private_redis() as url:
        yield url


@pytest.fixture
async def redis_url(redis_server: str) -> str:
    """The session's private redis-server, emptied for this test (nobody else uses it)."""
    client = aioredis.from_url(redis_server)
    try:
        await client.flushall()
    finally:
        await client.aclose()
    return redis_server


@contextlib.contextmanager
def _data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="llmhub-test-data-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data dir outside pytest's tmp tree: pytest keeps that tree at mode 0700 (and resets
    it when another worker starts), which the embedded PostgreSQL's own user, used when we run
    as root, could not traverse."""
    with _data_dir() as path:
        yield path


@pytest.fixture(scope="module")
def module_data_dir() -> Iterator[Path]:
    """`data_dir` for a module-scoped hub."""
    with _data_dir() as path:
        yield path


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake static AWS credentials (botocore signs with them; the fakes accept any), and
    nothing of the developer's AWS setup: no profile, config file, instance metadata or retry
    settings."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFAKEFAKEFAKE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "fake-token")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("LLMHUB_") and key not in TEST_CONTROLS:
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
