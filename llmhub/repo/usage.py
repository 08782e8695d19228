"""The `usage` table: one row per model call, from the UI or /v1."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from . import Db


@dataclass(frozen=True, slots=True)
class UsageRow:
    user_id: UUID | None
    api_key_id: UUID | None
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    exact: bool
    ttft_ms: int | None
    duration_ms: int | None
    status: str
    message_id: UUID | None = None


async def insert_usage(db: Db, row: UsageRow) -> None:
    await db.execute(
        "INSERT INTO usage (user_id, api_key_id, message_id, provider, model, input_tokens, "
        "output_tokens, cached_tokens, exact, ttft_ms, duration_ms, status) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        row.user_id,
        row.api_key_id,
        row.message_id,
        row.provider,
        row.model,
        row.input_tokens,
        row.output_tokens,
        row.cached_tokens,
        row.exact,
        row.ttft_ms,
        row.duration_ms,
        row.status,
    )
