"""Full-text search: ranking, prefixes, snippets, and never another user's chats."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from llmhub.chat import search_query
from tests.hub import Client, Hub


async def _seed(database_url: str, user_id: str, chats: dict[str, list[str]]) -> dict[str, str]:
    """Chats titled by key, each with its messages (alternating user/assistant, chained)."""
    conn = await asyncpg.connect(database_url)
    ids = {}
    try:
        for title, texts in chats.items():
            chat = await conn.fetchval(
                "INSERT INTO chats (user_id, title) VALUES ($1, $2) RETURNING id",
                UUID(user_id),
                title,
            )
            parent = None
            for i, text in enumerate(texts):
                parent = await conn.fetchval(
                    "INSERT INTO messages (chat_id, user_id, parent_id, role, content) "
                    "VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    chat,
                    UUID(user_id),
                    parent,
                    "user" if i % 2 == 0 else "assistant",
                    text,
                )
            ids[title] = str(chat)
    finally:
        await conn.close()
    return ids


async def _user_id(client: Client) -> str:
    return (await client.get("/api/auth/me")).body["user"]["id"]


async def _search(client: Client, q: str) -> list[dict]:
    from urllib.parse import quote

    found = await client.get(f"/api/search?q={quote(q)}")
    assert found.status == 200, found.text
    return found.body["data"]


async def test_search_ranks_highlights_and_isolates(hub: Hub, database_url: str) -> None:
    alice = await hub.signup("alice@example.com")
    bob = await hub.signup("bob@example.com")
    mine = await _seed(
        database_url,
        await _user_id(alice),
        {
            "Postgres tuning": [
                "How do I tune postgres vacuum settings?",
                "Postgres vacuum: set autovacuum_vacuum_scale_factor lower; postgres "
                "vacuum then runs more often on big tables.",
            ],
            "Gardening": [
                "When should I plant tomatoes?",
                "After the last frost, if a < b && c > d.",
            ],
            "Passing mention": [
                "A long story about many things, trains, weather, cooking, and at some point "
                "vacuum cleaners, which are not databases at all, followed by more words."
            ],
        },
    )
    theirs = await _seed(
        database_url, await _user_id(bob), {"Bob's vacuum": ["postgres vacuum secrets of bob"]}
    )

    hits = await _search(alice, "postgres vacuum")
    assert [h["chat_id"] for h in hits] == [mine["Postgres tuning"]]
    hit = hits[0]
    assert hit["chat_title"] == "Postgres tuning" and hit["role"] == "assistant"
    assert "<mark>Postgres</mark>" in hit["snippet"] and "<mark>vacuum</mark>" in hit["snippet"]

    ranked = await _search(alice, "vacuum")
    assert [h["chat_id"] for h in ranked] == [mine["Postgres tuning"], mine["Passing mention"]]
    assert ranked[0]["rank"] > ranked[1]["rank"]

    # The last word is a prefix (search as you type); earlier words are whole words.
    assert [h["chat_id"] for h in await _search(alice, "tomat")] == [mine["Gardening"]]
    assert await _search(alice, "tomat plant") == []
    assert [h["chat_id"] for h in await _search(alice, "plant tomat")] == [mine["Gardening"]]

    # Snippets are escaped HTML: user text never becomes markup.
    frost = (await _search(alice, "frost"))[0]["snippet"]
    assert "a &lt; b &amp;&amp; c &gt; d" in frost and "<mark>frost</mark>" in frost

    # Never another user's chats, whatever the query.
    for q in ("bob", "secrets", "postgres vacuum", "vac"):
        assert theirs["Bob's vacuum"] not in {h["chat_id"] for h in await _search(alice, q)}
    assert [h["chat_id"] for h in await _search(bob, "vacuum")] == [theirs["Bob's vacuum"]]


async def test_search_queries_never_break(hub: Hub, database_url: str) -> None:
    alice = await hub.signup("alice@example.com")
    mine = await _seed(
        database_url,
        await _user_id(alice),
        {"Odd words": ["Über den Wolken", "Never drop table messages in production."]},
    )
    odd = [mine["Odd words"]]
    # Operators and quotes are words or nothing, never tsquery syntax or SQL.
    for q in ("", "   ", "!!!", "::*", "(", "a & b | c"):
        assert await _search(alice, q) == [], q
    injected = await _search(alice, "'); DROP TABLE messages; --")
    assert [h["chat_id"] for h in injected] == odd  # the words, searched for as words
    assert [h["chat_id"] for h in await _search(alice, "ü")] == odd  # a prefix of "Über"
    assert [h["chat_id"] for h in await _search(alice, "wolken")] == odd  # messages still there
    assert (await alice.get("/api/search?q=" + "x" * 501)).status == 400
    assert (await alice.get("/api/search?q=x&limit=0")).status == 400
    assert (await hub.client().get("/api/search?q=x")).status == 401


def test_search_query_syntax() -> None:
    assert search_query("Hello, World") == "'hello' & 'world':*"
    assert search_query("it's") == "'it' & 's':*"
    assert search_query("--") is None
