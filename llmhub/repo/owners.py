"""Generation owners: the lease each llmhub process renews while it runs answers."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from . import Db

# The lease counts from the later of its last renewal and the PostgreSQL server's start, so a
# database restart gives every owner a full lease to come back before its answers look orphaned.
_EXPIRED = (
    "greatest(o.renewed_at, pg_postmaster_start_time()) "
    "+ make_interval(secs => o.lease_seconds) < now()"
)


async def register(db: Db, key: int, host: str, pid: int, lease_seconds: float) -> bool:
    """Take `key` for a new owner; False when another owner has it."""
    inserted = await db.fetchval(
        "INSERT INTO generation_owners (key, host, pid, lease_seconds) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (key) DO NOTHING RETURNING key",
        key,
        host,
        pid,
        lease_seconds,
    )
    return inserted is not None


async def renew(db: Db, key: int, host: str, pid: int, lease_seconds: float) -> bool:
    """Renew the lease; True if it had been retired (a sweep took it while we were away)."""
    return bool(
        await db.fetchval(
            "INSERT INTO generation_owners AS o (key, host, pid, lease_seconds) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO UPDATE SET renewed_at = now() "
            "RETURNING o.xmax = 0",
            key,
            host,
            pid,
            lease_seconds,
        )
    )


async def reclaim(db: Db, key: int, message_ids: Sequence[UUID]) -> int:
    """Answers this owner is still running that a sweep interrupted while its lease had lapsed:
    `streaming` again, so partial saves resume (the final save overwrites either way)."""
    result = await db.execute(
        "UPDATE messages SET status = 'streaming', error = NULL, generation_owner = $1 "
        "WHERE id = ANY($2::uuid[]) AND status = 'interrupted'",
        key,
        list(message_ids),
    )
    return int(result.split()[-1])


async def release(db: Db, key: int) -> None:
    await db.execute("DELETE FROM generation_owners WHERE key = $1", key)


async def neighbours(db: Db, host: str, key: int) -> list[tuple[int, int]]:
    """(key, pid) of the other owners whose pids this process can check."""
    rows = await db.fetch(
        "SELECT key, pid FROM generation_owners WHERE host = $1 AND key <> $2", host, key
    )
    return [(row["key"], row["pid"]) for row in rows]


async def retire(db: Db, keys: Sequence[int]) -> None:
    await db.execute("DELETE FROM generation_owners WHERE key = ANY($1::int[])", list(keys))


async def interrupt_orphans(db: Db, error: str) -> int:
    """Retire expired leases and mark `streaming` answers without a live owner `interrupted`,
    in one statement: an owner renewing at the same moment either keeps its lease or finds it
    gone (and reclaims its answers)."""
    result = await db.execute(
        f"""
        WITH expired AS (DELETE FROM generation_owners o WHERE {_EXPIRED} RETURNING o.key)
        UPDATE messages m SET status = 'interrupted', error = coalesce(m.error, $1),
            generation_owner = NULL, updated_at = now()
        WHERE m.status = 'streaming' AND (
            m.generation_owner IS NULL
            OR m.generation_owner IN (SELECT key FROM expired)
            OR NOT EXISTS (SELECT 1 FROM generation_owners o WHERE o.key = m.generation_owner))
        """,
        error,
    )
    return int(result.split()[-1])
