"""The `models` catalog table: every model seen, its capabilities and the admin's choices."""

from __future__ import annotations

import dataclasses
from typing import Any

from providers.base import ModelInfo

from . import Db


async def upsert_seen(db: Db, models: list[ModelInfo], fresh_for: float = 0.0) -> None:
    """Record models as seen now. A row that another replica wrote within `fresh_for` seconds,
    with the same details, is left alone: with several replicas each model is written once per
    round, not once per replica."""
    if not models:
        return
    await db.executemany(
        f"INSERT INTO models AS m (id, {_DETAILS}) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
        "ON CONFLICT (id) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in _DETAILS.split(", "))
        + ", last_seen_at = now() "
        "WHERE m.last_seen_at <= now() - make_interval(secs => $10) "
        f"OR ({_prefixed('m.')}) IS DISTINCT FROM ({_prefixed('excluded.')})",
        [
            (
                m.id,
                m.provider,
                dataclasses.asdict(m.capabilities),
                m.context_length,
                m.size_bytes,
                m.family,
                m.parameter_size,
                m.quantization,
                m.lifecycle,
                fresh_for,
            )
            for m in models
        ],
    )


# What a provider tells about a model (the rest of a row is the admin's).
_DETAILS = (
    "provider, capabilities, context_length, size_bytes, family, parameter_size, quantization, "
    "lifecycle"
)


def _prefixed(prefix: str) -> str:
    return ", ".join(prefix + c for c in _DETAILS.split(", "))


async def admin_choices(db: Db) -> dict[str, dict[str, Any]]:
    rows = await db.fetch("SELECT id, enabled, display_name, last_seen_at FROM models")
    return {
        r["id"]: {
            "enabled": r["enabled"],
            "display_name": r["display_name"],
            "last_seen_at": r["last_seen_at"],
        }
        for r in rows
    }


async def all_models(db: Db) -> list[dict[str, Any]]:
    rows = await db.fetch("SELECT * FROM models ORDER BY provider, id")
    return [dict(r) for r in rows]


async def update_model(
    db: Db, model_id: str, *, enabled: bool | None, display_name: str | None
) -> dict[str, Any] | None:
    row = await db.fetchrow(
        "UPDATE models SET enabled = coalesce($2, enabled), "
        "display_name = CASE WHEN $3::text IS NULL THEN display_name ELSE nullif($3, '') END "
        "WHERE id = $1 RETURNING *",
        model_id,
        enabled,
        display_name,
    )
    return dict(row) if row else None
