"""What a replica relaying another's answers needs from the database."""

from __future__ import annotations

from uuid import UUID

from . import Db


async def salvage(db: Db, message_id: UUID, content: str, reasoning: str | None) -> bool:
    """An answer interrupted because its owner died: keep the longer text a relaying replica
    had received (only ever longer, so several relaying replicas cannot undo each other)."""
    result = await db.execute(
        "UPDATE messages SET content = $2, reasoning = coalesce($3, reasoning), updated_at = now() "
        "WHERE id = $1 AND status = 'interrupted' AND length(content) < length($2) "
        "AND starts_with($2, content)",
        message_id,
        content,
        reasoning,
    )
    return result.split()[-1] != "0"


async def streaming_in_chat(db: Db, user_id: UUID, chat_id: UUID) -> list[UUID]:
    rows = await db.fetch(
        "SELECT id FROM messages WHERE chat_id = $1 AND user_id = $2 AND status = 'streaming'",
        chat_id,
        user_id,
    )
    return [row["id"] for row in rows]
