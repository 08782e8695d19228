"""Chat queries at scale: list a user's chats, open a 500-message chat, search.

Seeds a throwaway database with 1,000,000 messages in 10,000 chats of 100 users (set-based SQL:
a generated corpus COPYed in, then one INSERT … SELECT over generate_series), then times the
real repository functions and the HTTP routes (through uvicorn, API-key auth) and prints
p50/p99 against the targets (p50: list < 10 ms, open < 20 ms; p99: search < 50 ms, for every
kind of term: common, middling and rare words, two words, a three-letter prefix).
`bench/run.py` runs it as its scenario 6.

    python bench/bench_chats.py [--iterations 300] [--explain] [--quick]

Needs a PostgreSQL superuser URL in LLMHUB_TEST_DATABASE_URL (default: local postgres).
"""

# SQL here is formatted from this module's integer constants only.
# ruff: noqa: S608

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import asyncpg
import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmhub import accounts
from llmhub.chat import search_query
from llmhub.config import load_settings
from llmhub.db import create_pool
from llmhub.migrations import migrate
from llmhub.repo import chats as repo
from tests.hub import running_hub
from tests.pg import admin_url_from_env, throwaway_database


@dataclass(frozen=True)
class Sizes:
    users: int = 100
    chats: int = 10_000
    big_chat_messages: int = 500  # one per user: the chats we open
    corpus: int = 20_000
    vocabulary: int = 30_000

    @property
    def messages(self) -> int:
        """Chats 1..users have big_chat_messages, the next 400 have 95, the rest 96."""
        middling = min(400, self.chats - self.users)
        rest = self.chats - self.users - middling
        return self.users * self.big_chat_messages + middling * 95 + rest * 96


FULL = Sizes()  # 1,000,000 messages
QUICK = Sizes(users=5, chats=60, big_chat_messages=40, corpus=500, vocabulary=2_000)
TARGETS_MS = {"list": 10.0, "open": 20.0, "search": 50.0}
# Search terms by how often they occur: the most common words, middling ones, rare ones, two
# words, and prefixes of a word being typed.
SEARCH_RANKS = {"common": (0, 20), "medium": (200, 2000), "rare": (5000, 30000)}


def _vocabulary(rng: random.Random, sizes: Sizes) -> list[str]:
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ai")]
    words: set[str] = set()
    while len(words) < sizes.vocabulary:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))))
    return sorted(words, key=lambda w: (len(w), w))


def _corpus(rng: random.Random, words: list[str], sizes: Sizes) -> list[tuple[int, str]]:
    """Paragraphs of 8-100 words, word frequencies following Zipf's law (like real text)."""
    cumulative = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(words))))
    paragraphs = []
    for i in range(sizes.corpus):
        n = rng.randint(8, 100)
        text = " ".join(rng.choices(words, cum_weights=cumulative, k=n))
        paragraphs.append((i, text[:1].upper() + text[1:] + "."))
    return paragraphs


async def seed(
    conn: asyncpg.Connection, words: list[str], rng: random.Random, sizes: Sizes = FULL
) -> None:
    USERS, CHATS, CORPUS = sizes.users, sizes.chats, sizes.corpus
    BIG_CHAT_MESSAGES = sizes.big_chat_messages
    await conn.execute("SET maintenance_work_mem = '512MB'")
    await conn.execute(
        "INSERT INTO users (email, password_hash) "
        "SELECT 'user' || i || '@bench.test', 'x' FROM generate_series(1, $1) i",
        USERS,
    )
    # Chat n belongs to user n % USERS, so a user's rows are spread over the table as they
    # would be after months of interleaved use. Chats 1..USERS are the big ones.
    await conn.execute(
        f"""
        CREATE TEMP TABLE bench_users AS
            SELECT row_number() OVER (ORDER BY id) - 1 AS idx, id FROM users;
        INSERT INTO chats (user_id, title, model, pinned, archived, created_at, updated_at)
        SELECT u.id, 'Chat ' || n, 'llama3.2:1b', n % 50 = 0, n % 20 = 7,
               now() - interval '400 days' + n * interval '1 hour',
               now() - random() * interval '365 days'
        FROM generate_series(1, {CHATS}) n JOIN bench_users u ON u.idx = n % {USERS};
        CREATE TEMP TABLE bench_chats AS
            SELECT row_number() OVER (ORDER BY created_at) AS idx, id, user_id, created_at
            FROM chats;
        """
    )
    await conn.execute("CREATE TEMP TABLE corpus (id int PRIMARY KEY, body text NOT NULL)")
    await conn.copy_records_to_table("corpus", records=_corpus(rng, words, sizes))

    # Load without the secondary indexes and FK triggers, then build the indexes exactly as the
    # migrations define them.
    indexes = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'messages' "
        "AND indexname <> 'messages_pkey'"
    )
    for index in indexes:
        await conn.execute(f'DROP INDEX "{index["indexname"]}"')
    await conn.execute("SET session_replication_role = replica")
    total = await conn.fetchval(
        f"""
        WITH inserted AS (
            INSERT INTO messages (id, chat_id, user_id, parent_id, role, content, model, status,
                                  input_tokens, output_tokens, created_at, updated_at)
            SELECT md5(c.idx || ':' || n)::uuid, c.id, c.user_id,
                   CASE WHEN n > 1 THEN md5(c.idx || ':' || (n - 1))::uuid END,
                   CASE WHEN n % 2 = 1 THEN 'user' ELSE 'assistant' END,
                   p.body,
                   CASE WHEN n % 2 = 0 THEN 'llama3.2:1b' END,
                   'complete', 20, 80,
                   c.created_at + n * interval '1 minute', c.created_at + n * interval '1 minute'
            FROM bench_chats c
            CROSS JOIN LATERAL generate_series(1,
                CASE WHEN c.idx <= {USERS} THEN {BIG_CHAT_MESSAGES}
                     WHEN c.idx <= {USERS} + 400 THEN 95 ELSE 96 END) n
            JOIN corpus p ON p.id = (c.idx * 7919 + n * 104729) % {CORPUS}
            RETURNING 1
        ) SELECT count(*) FROM inserted
        """
    )
    await conn.execute("SET session_replication_role = origin")
    await conn.execute(
        "UPDATE chats c SET current_leaf_id = md5(b.idx || ':' || "
        f"CASE WHEN b.idx <= {USERS} THEN {BIG_CHAT_MESSAGES} WHEN b.idx <= {USERS} + 400 "
        "THEN 95 ELSE 96 END)::uuid FROM bench_chats b WHERE b.id = c.id"
    )
    for index in indexes:
        await conn.execute(index["indexdef"])
    await conn.execute("VACUUM ANALYZE")
    print(f"seeded {total:,} messages in {CHATS:,} chats of {USERS} users")


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


Row = tuple[str, float, float]  # name, p50 ms, p99 ms


async def _timed(name: str, iterations: int, call: Callable[[int], Awaitable[Any]]) -> Row:
    for i in range(min(20, iterations)):  # warm up caches and prepared statements
        await call(i)
    samples = []
    for i in range(iterations):
        started = time.perf_counter()
        await call(i)
        samples.append((time.perf_counter() - started) * 1000)
    return name, statistics.median(samples), _percentile(samples, 0.99)


def _report(rows: list[Row]) -> bool:
    """Targets: p50 for list and open, p99 for search (every kind of term)."""
    ok = True
    print(f"\n{'query':<34}{'p50 ms':>10}{'p99 ms':>10}{'target':>16}  verdict")
    for name, p50, p99 in rows:
        kind = name.split()[0]
        target = TARGETS_MS[kind]
        measured, label = (p99, "p99") if kind == "search" else (p50, "p50")
        passed = measured < target
        ok &= passed
        verdict = "ok" if passed else "SLOW"
        print(f"{name:<34}{p50:>10.2f}{p99:>10.2f}{label:>8} < {target:>3.0f} ms  {verdict}")
    return ok


def search_terms(rng: random.Random, words: list[str]) -> dict[str, list[str]]:
    """Ten terms of each kind: common, middling and rare words, two words, a 3-letter prefix."""
    top = len(words)

    def ranked(low: int, high: int) -> str:
        return words[rng.randrange(min(low, top - 1), min(high, top))]

    terms = {
        kind: [ranked(low, high) for _ in range(10)] for kind, (low, high) in SEARCH_RANKS.items()
    }
    terms["two-word"] = [f"{ranked(0, 200)} {ranked(200, 2000)}" for _ in range(10)]
    terms["prefix"] = [ranked(0, 2000)[:3] for _ in range(10)]
    return terms


async def measure(
    url: str, words: list[str], iterations: int, rng: random.Random, sizes: Sizes = FULL
) -> list[Row]:
    pool = await create_pool(url, min_size=2, max_size=4, connect_timeout=10)
    users = [r["id"] for r in await pool.fetch("SELECT id FROM users ORDER BY id")]
    big = await pool.fetch(
        "SELECT c.id, c.user_id FROM chats c WHERE (SELECT count(*) FROM messages m "
        f"WHERE m.chat_id = c.id) = {sizes.big_chat_messages}"
    )
    terms = search_terms(rng, words)

    async def list_chats(i: int) -> Any:
        return await repo.list_chats(pool, users[i % len(users)], archived=False, limit=50)

    async def open_chat(i: int) -> Any:
        chat = big[i % len(big)]
        await repo.get_chat(pool, chat["user_id"], chat["id"])
        return await repo.chat_messages_json(pool, chat["user_id"], chat["id"])

    def search(kind: str) -> Callable[[int], Awaitable[Any]]:
        queries = [search_query(t) or "" for t in terms[kind]]

        async def call(i: int) -> Any:
            return await repo.search_messages(
                pool, users[i % len(users)], queries[i % len(queries)], 20
            )

        return call

    rows = [
        await _timed("list (repo)", iterations, list_chats),
        await _timed("open (repo)", iterations, open_chat),
    ]
    rows += [await _timed(f"search {kind} (repo)", iterations, search(kind)) for kind in terms]
    keys = {}
    for user_id in users:
        keys[user_id], _ = await accounts.create_api_key(pool, user_id, name="bench")
    await pool.close()

    settings = load_settings(
        Path(os.devnull),
        overrides={
            "database_url": url,
            "data_dir": Path(tempfile.gettempdir()) / "llmhub-bench",
            "secret_key": "bench-secret-key-" + "x" * 32,
            "migrate_on_start": False,
            "ollama": {"url": "http://127.0.0.1:9"},
        },
    )
    async with running_hub(settings) as hub, aiohttp.ClientSession() as http:

        async def get(path: str, user_id: Any) -> None:
            headers = {"Authorization": f"Bearer {keys[user_id]}"}
            async with http.get(hub.url + path, headers=headers) as response:
                assert response.status == 200, await response.text()
                await response.read()

        async def http_list(i: int) -> None:
            await get("/api/chats?limit=50", users[i % len(users)])

        async def http_open(i: int) -> None:
            chat = big[i % len(big)]
            await get(f"/api/chats/{chat['id']}", chat["user_id"])

        every_term = [t for kind in terms.values() for t in kind]

        async def http_search(i: int) -> None:
            await get(
                f"/api/search?q={quote(every_term[i % len(every_term)])}", users[i % len(users)]
            )

        rows += [
            await _timed("list (HTTP)", iterations, http_list),
            await _timed("open (HTTP)", iterations, http_open),
            await _timed("search all kinds (HTTP)", iterations, http_search),
        ]
    return rows


async def explain(url: str, words: list[str], sizes: Sizes = FULL) -> None:
    """The plans behind the numbers, for one typical call of each query."""
    conn = await asyncpg.connect(url)
    try:
        user_id, chat_id = await conn.fetchrow(
            f"SELECT user_id, id FROM chats ORDER BY created_at LIMIT 1 OFFSET {sizes.users - 1}"
        )
        plans = {
            "list": (
                "SELECT * FROM chats c WHERE c.user_id = $1 AND c.archived = false "
                "ORDER BY c.pinned DESC, c.updated_at DESC, c.id DESC LIMIT 51",
                user_id,
            ),
            "open": (
                "SELECT * FROM messages m WHERE m.chat_id = $1 "
                "AND EXISTS (SELECT 1 FROM chats c WHERE c.id = $1 AND c.user_id = $2) "
                "ORDER BY m.created_at, m.id",
                chat_id,
                user_id,
            ),
            "search (common word)": (
                "SELECT count(*) FROM messages m WHERE m.user_id = $1 "
                "AND m.search @@ to_tsquery('simple', $2)",
                user_id,
                search_query(words[1]),
            ),
        }
        for name, (query, *args) in plans.items():
            rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {query}", *args)
            print(f"\n-- {name}\n" + "\n".join(r[0] for r in rows))
    finally:
        await conn.close()


async def run(
    admin_url: str,
    sizes: Sizes = FULL,
    iterations: int = 300,
    seed_value: int = 7,
    show_plans: bool = False,
) -> list[Row]:
    """Seed a throwaway database of `sizes`, time every query, drop the database."""
    rng = random.Random(seed_value)
    words = _vocabulary(rng, sizes)
    rng.shuffle(words)  # the corpus weights word i by 1/(i+1)
    async with throwaway_database(admin_url, prefix="llmhub_bench") as url:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
            started = time.perf_counter()
            await seed(conn, words, rng, sizes)
            print(f"seeding took {time.perf_counter() - started:.0f} s")
        finally:
            await conn.close()
        if show_plans:
            await explain(url, words, sizes)
        return await measure(url, words, iterations, rng, sizes)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="a tiny history, for a smoke test")
    parser.add_argument("--explain", action="store_true", help="print the query plans too")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    sizes = QUICK if args.quick else FULL
    rows = await run(admin_url_from_env(), sizes, args.iterations, args.seed, args.explain)
    return 0 if _report(rows) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
