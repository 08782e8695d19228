"""Migrations against a real PostgreSQL: each test gets its own empty database."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path

import asyncpg
import pytest

from llmhub.migrations import Migration, MigrationError, load_migrations, migrate, status
from llmhub.resources import SQL_DIR
from tests.serve import Ran, run_llmhub

CORE_TABLES = {"users", "sessions", "api_keys", "chats", "messages", "models", "usage"}


async def tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r["tablename"] for r in rows}


@pytest.fixture
async def conn(empty_database_url: str):
    connection = await asyncpg.connect(empty_database_url)
    yield connection
    await connection.close()


async def test_fresh_apply_creates_the_core_schema(conn: asyncpg.Connection) -> None:
    applied = await migrate(conn)
    assert applied == [m.name for m in load_migrations()]
    assert CORE_TABLES | {"schema_migrations"} <= await tables(conn)
    rows = await conn.fetch("SELECT name, checksum FROM schema_migrations ORDER BY name")
    assert [(r["name"], r["checksum"]) for r in rows] == [
        (m.name, m.checksum) for m in load_migrations()
    ]
    # Messages form a tree: a reply names its parent; two replies to one message are
    # siblings (a regenerated answer); a parent that does not exist is refused; deleting a
    # message deletes the branch below it.
    user = await conn.fetchval(
        "INSERT INTO users (email, password_hash) VALUES ('a@example.com', 'x') RETURNING id"
    )
    chat = await conn.fetchval("INSERT INTO chats (user_id) VALUES ($1) RETURNING id", user)

    async def message(parent: object, role: str = "assistant") -> object:
        return await conn.fetchval(
            "INSERT INTO messages (chat_id, user_id, parent_id, role) VALUES ($1, $2, $3, $4) "
            "RETURNING id",
            chat,
            user,
            parent,
            role,
        )

    root = await message(None, "user")
    first, second = await message(root), await message(root)
    follow_up = await message(first, "user")
    children = await conn.fetch(
        "SELECT id FROM messages WHERE parent_id = $1 ORDER BY created_at, id", root
    )
    assert {r["id"] for r in children} == {first, second}
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await message(uuid.uuid4())
    await conn.execute("DELETE FROM messages WHERE id = $1", first)
    left = {r["id"] for r in await conn.fetch("SELECT id FROM messages WHERE chat_id = $1", chat)}
    assert left == {root, second} and follow_up not in left


async def test_rerun_is_a_no_op(conn: asyncpg.Connection) -> None:
    await migrate(conn)
    before = await conn.fetch("SELECT name, applied_at FROM schema_migrations ORDER BY name")
    assert await migrate(conn) == []
    after = await conn.fetch("SELECT name, applied_at FROM schema_migrations ORDER BY name")
    assert before == after


def copy_migrations(tmp_path: Path) -> Path:
    target = tmp_path / "sql"
    shutil.copytree(SQL_DIR, target)
    return target


async def test_edited_applied_migration_is_refused(conn: asyncpg.Connection, tmp_path: Path):
    sql = copy_migrations(tmp_path)
    await migrate(conn, load_migrations(sql))
    first = sorted(sql.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- a harmless-looking edit\n")
    (sql / "9999_later.sql").write_text("CREATE TABLE later (id int);")
    with pytest.raises(MigrationError, match=f"{first.stem}.sql was edited"):
        await migrate(conn, load_migrations(sql))
    assert "later" not in await tables(conn)  # nothing after the refusal ran
    assert (await status(conn, load_migrations(sql)))[0].edited is True


async def test_failed_migration_rolls_back_alone(conn: asyncpg.Connection) -> None:
    good = Migration("0001_good", "CREATE TABLE good (id int);")
    bad = Migration("0002_bad", "CREATE TABLE half_done (id int); SELECT * FROM no_such_table;")
    with pytest.raises(asyncpg.UndefinedTableError):
        await migrate(conn, [good, bad])
    assert {"good"} <= await tables(conn)
    assert "half_done" not in await tables(conn)
    names = [r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")]
    assert names == ["0001_good"]
    # The lock was released: a fixed migration applies on the next run.
    fixed = Migration("0002_bad", "CREATE TABLE half_done (id int);")
    assert await migrate(conn, [good, fixed]) == ["0002_bad"]


async def test_concurrent_runners_apply_each_migration_once(empty_database_url: str) -> None:
    migrations = [
        Migration("0001_counter", "CREATE TABLE counter (runner int);"),
        # pg_sleep widens the window in which a second runner could slip in.
        Migration("0002_count", "INSERT INTO counter VALUES (1); SELECT pg_sleep(0.2);"),
        Migration("0003_more", "INSERT INTO counter VALUES (3);"),
    ]
    conns = [await asyncpg.connect(empty_database_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c, migrations) for c in conns))
        applied = sorted(name for names in results for name in names)
        assert applied == ["0001_counter", "0002_count", "0003_more"]
        assert await conns[0].fetchval("SELECT count(*) FROM counter") == 2
    finally:
        for c in conns:
            await c.close()


def test_duplicate_numbers_are_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0001_b.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="share a number"):
        load_migrations(tmp_path)


async def test_migrate_command_shows_progress_and_status(empty_database_url: str) -> None:
    async def llmhub(*args: str) -> Ran:
        return await run_llmhub("migrate", "--database-url", empty_database_url, *args)

    pending = await llmhub("--status")
    assert pending.returncode == 0, pending.stderr
    names = [m.name for m in load_migrations()]
    assert all(f"{n}" in pending.stdout and "pending" in pending.stdout for n in names)

    first = await llmhub()
    assert first.returncode == 0, first.stderr
    for name in names:
        assert f"applying {name} ... done" in first.stdout
    assert f"{len(names)} migration(s) applied" in first.stdout

    again = await llmhub()
    assert again.returncode == 0 and "database is up to date" in again.stdout
    applied = await llmhub("--status")
    assert "pending" not in applied.stdout and applied.stdout.count("applied") == len(names)
