"""Chats, their message trees, generation state, search, export/import and usage reports.

Every query that reads or changes a user's data carries `user_id = $n`: another user's chat
is simply not found.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from . import Db

DEFAULT_TITLE = "New chat"

_CHAT_FIELDS = (
    "id",
    "user_id",
    "title",
    "model",
    "system_prompt",
    "settings",
    "pinned",
    "archived",
    "current_leaf_id",
    "created_at",
    "updated_at",
)
_CHAT_COLUMNS = ", ".join(f"c.{name}" for name in _CHAT_FIELDS)

_MESSAGE_FIELDS = (
    "id",
    "chat_id",
    "parent_id",
    "role",
    "content",
    "reasoning",
    "attachments",
    "model",
    "status",
    "error",
    "stop_reason",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "usage_exact",
    "ttft_ms",
    "duration_ms",
    "created_at",
    "updated_at",
)
_MESSAGE_COLUMNS = ", ".join(f"m.{name}" for name in _MESSAGE_FIELDS)


def _iso(value: datetime | None) -> str | None:
    """Always with microseconds, like the JSON PostgreSQL builds in chat_messages_json."""
    return value.isoformat(timespec="microseconds") if value else None


@dataclass(frozen=True, slots=True)
class Chat:
    id: UUID
    user_id: UUID
    title: str
    model: str | None
    system_prompt: str | None
    settings: dict[str, Any]
    pinned: bool
    archived: bool
    current_leaf_id: UUID | None
    created_at: datetime
    updated_at: datetime

    @property
    def temperature(self) -> float | None:
        return self.settings.get("temperature")

    @property
    def max_tokens(self) -> int | None:
        return self.settings.get("max_tokens")

    def public(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "title": self.title,
            "model": self.model,
            "system_prompt": self.system_prompt,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "pinned": self.pinned,
            "archived": self.archived,
            "current_leaf_id": str(self.current_leaf_id) if self.current_leaf_id else None,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class Message:
    id: UUID
    chat_id: UUID
    parent_id: UUID | None
    role: str
    content: str
    reasoning: str | None
    attachments: Any
    model: str | None
    status: str
    error: str | None
    stop_reason: str | None
    input_tokens: int | None
    output_tokens: int | None
    cached_tokens: int | None
    usage_exact: bool | None
    ttft_ms: int | None
    duration_ms: int | None
    created_at: datetime
    updated_at: datetime

    def public(self) -> dict[str, Any]:
        usage = None
        if self.input_tokens is not None or self.output_tokens is not None:
            usage = {
                "input_tokens": self.input_tokens or 0,
                "output_tokens": self.output_tokens or 0,
                "cached_tokens": self.cached_tokens or 0,
                "exact": bool(self.usage_exact),
            }
        return {
            "id": str(self.id),
            "chat_id": str(self.chat_id),
            "parent_id": str(self.parent_id) if self.parent_id else None,
            "role": self.role,
            "content": self.content,
            "reasoning": self.reasoning,
            "attachments": self.attachments,
            "model": self.model,
            "status": self.status,
            "error": self.error,
            "stop_reason": self.stop_reason,
            "usage": usage,
            "ttft_ms": self.ttft_ms,
            "duration_ms": self.duration_ms,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


def _chat(row: asyncpg.Record) -> Chat:
    return Chat(*(row[name] for name in _CHAT_FIELDS))


def _message(row: asyncpg.Record) -> Message:
    return Message(*(row[name] for name in _MESSAGE_FIELDS))


# -- chats ---------------------------------------------------------------------------------------


async def create_chat(
    db: Db,
    user_id: UUID,
    *,
    title: str | None,
    model: str | None,
    system_prompt: str | None,
    settings: dict[str, Any],
) -> Chat:
    row = await db.fetchrow(
        "INSERT INTO chats AS c (user_id, title, model, system_prompt, settings) "
        f"VALUES ($1, coalesce($2, '{DEFAULT_TITLE}'), $3, $4, $5) RETURNING {_CHAT_COLUMNS}",
        user_id,
        title,
        model,
        system_prompt,
        settings,
    )
    assert row is not None  # INSERT ... RETURNING always returns the row it made
    return _chat(row)


ChatCursor = tuple[bool, datetime, UUID]


async def list_chats(
    db: Db, user_id: UUID, *, archived: bool, limit: int, after: ChatCursor | None = None
) -> list[Chat]:
    """Pinned first, then most recently active; keyset-paginated so inserts never shift pages."""
    order = "ORDER BY c.pinned DESC, c.updated_at DESC, c.id DESC LIMIT $3"
    base = f"SELECT {_CHAT_COLUMNS} FROM chats c WHERE c.user_id = $1 AND c.archived = $2"
    if after is None:
        rows = await db.fetch(f"{base} {order}", user_id, archived, limit)
    else:
        rows = await db.fetch(
            f"{base} AND (c.pinned, c.updated_at, c.id) < ($4, $5, $6) {order}",
            user_id,
            archived,
            limit,
            *after,
        )
    return [_chat(r) for r in rows]


async def get_chat(db: Db, user_id: UUID, chat_id: UUID) -> Chat | None:
    row = await db.fetchrow(
        f"SELECT {_CHAT_COLUMNS} FROM chats c WHERE c.id = $1 AND c.user_id = $2", chat_id, user_id
    )
    return _chat(row) if row else None


def _iso_sql(column: str) -> str:
    """A timestamptz as Python's isoformat() writes it (UTC, microseconds, +00:00)."""
    return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')"""


# Message.public(), built by PostgreSQL: opening a long chat is then one query whose JSON goes
# to the client untouched, instead of decoding, wrapping and re-encoding every row in Python.
_MESSAGE_JSON = f"""json_build_object(
    'id', m.id, 'chat_id', m.chat_id, 'parent_id', m.parent_id, 'role', m.role,
    'content', m.content, 'reasoning', m.reasoning, 'attachments', m.attachments,
    'model', m.model, 'status', m.status, 'error', m.error, 'stop_reason', m.stop_reason,
    'usage', CASE WHEN m.input_tokens IS NOT NULL OR m.output_tokens IS NOT NULL THEN
        json_build_object('input_tokens', coalesce(m.input_tokens, 0),
            'output_tokens', coalesce(m.output_tokens, 0),
            'cached_tokens', coalesce(m.cached_tokens, 0),
            'exact', coalesce(m.usage_exact, false)) END,
    'ttft_ms', m.ttft_ms, 'duration_ms', m.duration_ms,
    'created_at', {_iso_sql("m.created_at")}, 'updated_at', {_iso_sql("m.updated_at")})"""


async def chat_messages_json(db: Db, user_id: UUID, chat_id: UUID) -> str:
    """The whole tree as a JSON array of `Message.public()` objects, oldest first (so
    siblings come in the order they were made).

    Ownership is checked once on the chat rather than per row: with `m.user_id = $2` the
    planner underestimates the rows (chat and user are correlated) and ANDs in a bitmap of all
    the user's messages.
    """
    tree: str = await db.fetchval(
        f"SELECT coalesce(json_agg({_MESSAGE_JSON} ORDER BY m.created_at, m.id), '[]')::text "
        "FROM messages m WHERE m.chat_id = $1 "
        "AND EXISTS (SELECT 1 FROM chats c WHERE c.id = $1 AND c.user_id = $2)",
        chat_id,
        user_id,
    )
    return tree


_CHAT_UPDATABLE = {"title", "pinned", "archived", "model", "system_prompt", "current_leaf_id"}


async def update_chat(
    db: Db,
    user_id: UUID,
    chat_id: UUID,
    changes: dict[str, Any],
    settings: dict[str, Any] | None = None,
) -> Chat | None:
    """Set `changes` columns; merge `settings` keys (a None value removes the key).

    Renaming, pinning or archiving does not bump `updated_at`: that orders the sidebar by
    activity, and a rename is not activity.
    """
    assert set(changes) <= _CHAT_UPDATABLE, changes
    assignments = [f"{name} = ${i}" for i, name in enumerate(changes, start=3)]
    args: list[Any] = list(changes.values())
    if settings:
        n = len(args) + 3
        assignments.append(f"settings = jsonb_strip_nulls(c.settings || ${n})")
        args.append(settings)
    if not assignments:
        return await get_chat(db, user_id, chat_id)
    row = await db.fetchrow(
        f"UPDATE chats c SET {', '.join(assignments)} WHERE c.id = $1 AND c.user_id = $2 "
        f"RETURNING {_CHAT_COLUMNS}",
        chat_id,
        user_id,
        *args,
    )
    return _chat(row) if row else None


async def delete_chat(db: Db, user_id: UUID, chat_id: UUID) -> bool:
    result = await db.execute("DELETE FROM chats WHERE id = $1 AND user_id = $2", chat_id, user_id)
    return result == "DELETE 1"


async def set_generated_title(db: Db, chat_id: UUID, title: str) -> bool:
    """Only replaces the default title: a chat the user renamed meanwhile keeps its name."""
    result = await db.execute(
        "UPDATE chats SET title = $2 WHERE id = $1 AND title = $3", chat_id, title, DEFAULT_TITLE
    )
    return result == "UPDATE 1"


# -- messages ------------------------------------------------------------------------------------


async def get_message(db: Db, user_id: UUID, message_id: UUID) -> Message | None:
    row = await db.fetchrow(
        f"SELECT {_MESSAGE_COLUMNS} FROM messages m WHERE m.id = $1 AND m.user_id = $2",
        message_id,
        user_id,
    )
    return _message(row) if row else None


async def message_path(db: Db, user_id: UUID, chat_id: UUID, leaf_id: UUID) -> list[Message]:
    """The branch from the root down to `leaf_id`, root first; [] if the leaf is not there."""
    rows = await db.fetch(
        f"""
        WITH RECURSIVE path AS (
            SELECT m.id, m.parent_id, 0 AS depth FROM messages m
            WHERE m.id = $1 AND m.chat_id = $2 AND m.user_id = $3
            UNION ALL
            SELECT m.id, m.parent_id, p.depth + 1 FROM messages m JOIN path p ON m.id = p.parent_id
        )
        SELECT {_MESSAGE_COLUMNS} FROM path JOIN messages m ON m.id = path.id
        WHERE m.user_id = $3 ORDER BY path.depth DESC
        """,
        leaf_id,
        chat_id,
        user_id,
    )
    return [_message(r) for r in rows]


@dataclass(frozen=True, slots=True)
class Exchange:
    user_message: Message | None
    assistant_message: Message


async def start_exchange(
    pool: asyncpg.Pool,
    user_id: UUID,
    chat_id: UUID,
    *,
    parent_id: UUID | None,
    content: str | None,
    model: str,
    owner: int,
) -> Exchange | None:
    """Commit the user's message (when `content` is given) and a `streaming` assistant answer
    below it, and make the answer the chat's current leaf. None if the chat is gone.

    clock_timestamp(), not now(): both rows are made in one transaction and must not tie on
    created_at, which orders siblings.
    """
    async with pool.acquire() as conn, conn.transaction():
        touched = await conn.fetchval(
            "UPDATE chats SET updated_at = now(), model = coalesce(model, $3) "
            "WHERE id = $1 AND user_id = $2 RETURNING id",
            chat_id,
            user_id,
            model,
        )
        if touched is None:
            return None
        user_message = None
        if content is not None:
            row = await conn.fetchrow(
                "INSERT INTO messages AS m (chat_id, user_id, parent_id, role, content, "
                "created_at, updated_at) VALUES ($1, $2, $3, 'user', $4, clock_timestamp(), "
                f"clock_timestamp()) RETURNING {_MESSAGE_COLUMNS}",
                chat_id,
                user_id,
                parent_id,
                content,
            )
            assert row is not None  # INSERT ... RETURNING always returns the row it made
            user_message = _message(row)
            parent_id = user_message.id
        row = await conn.fetchrow(
            "INSERT INTO messages AS m (chat_id, user_id, parent_id, role, model, status, "
            "generation_owner, created_at, updated_at) VALUES ($1, $2, $3, 'assistant', $4, "
            "'streaming', $5, clock_timestamp(), clock_timestamp()) "
            f"RETURNING {_MESSAGE_COLUMNS}",
            chat_id,
            user_id,
            parent_id,
            model,
            owner,
        )
        assert row is not None  # INSERT ... RETURNING always returns the row it made
        assistant = _message(row)
        await conn.execute(
            "UPDATE chats SET current_leaf_id = $2 WHERE id = $1", chat_id, assistant.id
        )
    return Exchange(user_message, assistant)


async def flush_partial(db: Db, message_id: UUID, content: str, reasoning: str | None) -> None:
    """Partial content of a running generation (never over a final state)."""
    await db.execute(
        "UPDATE messages SET content = $2, reasoning = $3, updated_at = now() "
        "WHERE id = $1 AND status = 'streaming'",
        message_id,
        content,
        reasoning,
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str
    content: str
    reasoning: str | None
    error: str | None
    stop_reason: str | None
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    usage_exact: bool
    ttft_ms: int | None
    duration_ms: int


async def finish_message(db: Db, message_id: UUID, o: Outcome) -> None:
    await db.execute(
        "UPDATE messages SET status = $2, content = $3, reasoning = $4, error = $5, "
        "stop_reason = $6, input_tokens = $7, output_tokens = $8, cached_tokens = $9, "
        "usage_exact = $10, ttft_ms = $11, duration_ms = $12, generation_owner = NULL, "
        "updated_at = now() WHERE id = $1",
        message_id,
        o.status,
        o.content,
        o.reasoning,
        o.error,
        o.stop_reason,
        o.input_tokens,
        o.output_tokens,
        o.cached_tokens,
        o.usage_exact,
        o.ttft_ms,
        o.duration_ms,
    )


# -- search --------------------------------------------------------------------------------------

# Control characters cannot occur in a snippet's text, so they mark matches unambiguously; the
# caller escapes the text and turns them into <mark> tags.
MATCH_START = "\x02"
MATCH_STOP = "\x03"
# One excerpt: ts_headline's fragment mode cuts fragments off right after the match.
_HEADLINE_OPTIONS = f"StartSel={MATCH_START}, StopSel={MATCH_STOP}, MaxWords=30, MinWords=12"


@dataclass(frozen=True, slots=True)
class SearchHit:
    chat_id: UUID
    chat_title: str
    archived: bool
    message_id: UUID
    role: str
    rank: float
    created_at: datetime
    snippet: str


async def search_messages(db: Db, user_id: UUID, tsquery: str, limit: int) -> list[SearchHit]:
    """The best-matching message of each of the user's chats, best chats first.

    Ranking (ts_rank, normalised by document length) runs over every match; the costly
    ts_headline only over the `limit` rows returned.
    """
    rows = await db.fetch(
        """
        WITH q AS (SELECT to_tsquery('simple', $2) AS q),
        best AS (
            SELECT DISTINCT ON (m.chat_id) m.id, m.chat_id, m.role, m.created_at,
                ts_rank(m.search, q.q, 1) AS rank
            FROM messages m, q
            WHERE m.user_id = $1 AND m.search @@ q.q
            ORDER BY m.chat_id, rank DESC, m.created_at DESC
        ),
        top AS (SELECT * FROM best ORDER BY rank DESC, created_at DESC LIMIT $3)
        SELECT t.chat_id, c.title, c.archived, t.id, t.role, t.rank, t.created_at,
            ts_headline('simple', m.content, q.q, $4) AS snippet
        FROM top t
        JOIN chats c ON c.id = t.chat_id AND c.user_id = $1
        JOIN messages m ON m.id = t.id, q
        ORDER BY t.rank DESC, t.created_at DESC
        """,
        user_id,
        tsquery,
        limit,
        _HEADLINE_OPTIONS,
    )
    return [
        SearchHit(
            r["chat_id"],
            r["title"],
            r["archived"],
            r["id"],
            r["role"],
            float(r["rank"]),
            r["created_at"],
            r["snippet"],
        )
        for r in rows
    ]


# -- export and import ---------------------------------------------------------------------------


async def chats_with_messages(
    db: Db, user_id: UUID, chat_id: UUID | None = None
) -> list[tuple[Chat, list[Message]]]:
    """One chat (or all of the user's) with every message, for export."""
    chats = await db.fetch(
        f"SELECT {_CHAT_COLUMNS} FROM chats c WHERE c.user_id = $1 "
        "AND ($2::uuid IS NULL OR c.id = $2) ORDER BY c.created_at, c.id",
        user_id,
        chat_id,
    )
    rows = await db.fetch(
        f"SELECT {_MESSAGE_COLUMNS} FROM messages m WHERE m.user_id = $1 "
        "AND ($2::uuid IS NULL OR m.chat_id = $2) ORDER BY m.chat_id, m.created_at, m.id",
        user_id,
        chat_id,
    )
    by_chat: dict[UUID, list[Message]] = {}
    for r in rows:
        by_chat.setdefault(r["chat_id"], []).append(_message(r))
    return [(c, by_chat.get(c.id, [])) for c in map(_chat, chats)]


@dataclass(slots=True)
class ImportedChat:
    """A chat to insert with its messages; ids are already fresh, parents come first."""

    id: UUID
    title: str
    model: str | None
    system_prompt: str | None
    settings: dict[str, Any]
    pinned: bool
    archived: bool
    current_leaf_id: UUID | None
    created_at: datetime
    updated_at: datetime
    messages: list[tuple[Any, ...]] = field(default_factory=list)


IMPORT_MESSAGE_FIELDS = tuple(f for f in _MESSAGE_FIELDS if f != "chat_id")


async def import_chats(pool: asyncpg.Pool, user_id: UUID, chats: Sequence[ImportedChat]) -> None:
    """All or nothing. `messages` rows are tuples in IMPORT_MESSAGE_FIELDS order."""
    columns = ", ".join(("chat_id", "user_id", *IMPORT_MESSAGE_FIELDS))
    params = ", ".join(f"${i}" for i in range(1, len(IMPORT_MESSAGE_FIELDS) + 3))
    async with pool.acquire() as conn, conn.transaction():
        for chat in chats:
            await conn.execute(
                "INSERT INTO chats (id, user_id, title, model, system_prompt, settings, pinned, "
                "archived, current_leaf_id, created_at, updated_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                chat.id,
                user_id,
                chat.title,
                chat.model,
                chat.system_prompt,
                chat.settings,
                chat.pinned,
                chat.archived,
                chat.current_leaf_id,
                chat.created_at,
                chat.updated_at,
            )
            if chat.messages:
                await conn.executemany(
                    f"INSERT INTO messages ({columns}) VALUES ({params})",
                    [(chat.id, user_id, *row) for row in chat.messages],
                )


# -- usage ---------------------------------------------------------------------------------------


async def usage_report(
    db: Db,
    *,
    user_id: UUID | None,
    since: datetime,
    until: datetime,
    by_user: bool,
) -> list[dict[str, Any]]:
    """Calls and tokens per UTC day and model (and user, when `by_user`)."""
    user_columns = ", u.user_id, us.email" if by_user else ""
    rows = await db.fetch(
        f"""
        SELECT (u.created_at AT TIME ZONE 'UTC')::date AS day, u.provider, u.model{user_columns},
            count(*) AS requests,
            count(*) FILTER (WHERE u.status NOT IN ('complete', 'stopped')) AS failed,
            coalesce(sum(u.input_tokens), 0) AS input_tokens,
            coalesce(sum(u.output_tokens), 0) AS output_tokens,
            coalesce(sum(u.cached_tokens), 0) AS cached_tokens,
            bool_and(u.exact) AS exact
        FROM usage u {"LEFT JOIN users us ON us.id = u.user_id" if by_user else ""}
        WHERE ($1::uuid IS NULL OR u.user_id = $1) AND u.created_at >= $2 AND u.created_at < $3
        GROUP BY 1, 2, 3{", 4, 5" if by_user else ""}
        ORDER BY 1, 2, 3{", 5" if by_user else ""}
        """,
        user_id,
        since,
        until,
    )
    return [dict(r) for r in rows]


# -- per-user chat preferences -------------------------------------------------------------------


async def user_preferences(db: Db, user_id: UUID) -> dict[str, Any]:
    value = await db.fetchval("SELECT settings FROM users WHERE id = $1", user_id)
    return dict(value or {})


async def update_user_preferences(db: Db, user_id: UUID, changes: dict[str, Any]) -> dict[str, Any]:
    value = await db.fetchval(
        "UPDATE users SET settings = settings || $2 WHERE id = $1 RETURNING settings",
        user_id,
        changes,
    )
    return dict(value or {})
