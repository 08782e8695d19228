"""The suite's own PostgreSQL: the configured server, else an embedded one (pgserver), whose
URLs name a socket directory in their query. `.ci/run` runs this module (with a few others) a
second time with nothing listening at LLMHUB_TEST_DATABASE_URL."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import asyncpg

from tests.pg import admin_url_from_env, database_name, reachable, with_database


def test_database_names_come_from_the_path_not_the_socket_directory() -> None:
    embedded = "postgresql://postgres:@/llmhub_template_0a1b?host=/tmp/llmhub-test-pg-x/pg"
    assert database_name(embedded) == "llmhub_template_0a1b"
    assert with_database(embedded, "llmhub_test_2c3d") == (
        "postgresql://postgres:@/llmhub_test_2c3d?host=/tmp/llmhub-test-pg-x/pg"
    )
    assert database_name("postgresql://postgres@127.0.0.1:5432/postgres") == "postgres"


async def test_the_suite_uses_the_configured_server_or_an_embedded_one(
    pg_admin_url: str, database_url: str
) -> None:
    configured = admin_url_from_env()
    if await reachable(configured):
        assert pg_admin_url == configured
    else:  # the fallback: a private server on a Unix socket of its own
        (socket_dir,) = parse_qs(urlsplit(pg_admin_url).query)["host"]
        assert socket_dir.startswith("/") and not urlsplit(pg_admin_url).port
    # Either way a test's database is its own, cloned from the migrated template.
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT current_database()") == database_name(database_url)
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") > 0
    finally:
        await conn.close()
