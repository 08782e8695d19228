"""The model catalog as users see it: the registry's live models, minus those an admin disabled,
under the names an admin chose. Admin choices are cached briefly; a change drops the cache on
every replica at once (llmhub.invalidation), `CACHE_SECONDS` is the fallback."""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg
import structlog

from providers.base import ModelInfo
from providers.errors import ModelNotFound
from providers.registry import Registry

from .repo import models as repo

if TYPE_CHECKING:
    from .loaded_models import LoadedModels

log = structlog.get_logger("llmhub.catalog")


class Catalog:
    CACHE_SECONDS = 5.0

    def __init__(
        self, pool: asyncpg.Pool, registry: Registry, loaded: LoadedModels | None = None
    ) -> None:
        self.pool = pool
        self.registry = registry
        self.loaded = loaded  # what Ollama holds in memory, for the detail
        self._choices: dict[str, dict[str, Any]] = {}
        self._loaded_at = float("-inf")
        self._epoch = 0  # bumped by invalidate: a read that raced with it is not kept

    async def record_seen(self, provider: str, models: list[ModelInfo]) -> None:
        """Registry refresh hook: remember every model seen, so the catalog outlives outages."""
        try:
            # Every replica refreshes; the row is written by the first of them each round.
            await repo.upsert_seen(self.pool, models, fresh_for=self.registry.ttl / 2)
        except Exception as exc:  # the catalog table is bookkeeping; serving goes on without it
            log.warning("could not record models", provider=provider, error=str(exc))
        self.invalidate()

    def invalidate(self) -> None:
        self._epoch += 1
        self._loaded_at = float("-inf")

    async def choices(self) -> dict[str, dict[str, Any]]:
        if time.monotonic() - self._loaded_at > self.CACHE_SECONDS:
            epoch, started = self._epoch, time.monotonic()
            choices = await repo.admin_choices(self.pool)
            if epoch != self._epoch:
                return choices  # fresh enough for this caller, not to keep
            self._choices, self._loaded_at = choices, started
        return self._choices

    async def check_enabled(self, model_id: str) -> None:
        bare = model_id.partition("/")[2] if model_id.startswith(self._prefixes()) else model_id
        choice = (await self.choices()).get(bare)
        if choice is not None and not choice["enabled"]:
            raise ModelNotFound(f"model '{model_id}' has been disabled by an admin")

    def _prefixes(self) -> tuple[str, ...]:
        return tuple(f"{name}/" for name in self.registry.providers)

    async def visible(
        self, *, include_disabled: bool = False, locations: bool = False
    ) -> list[dict[str, Any]]:
        """`locations`: which servers hold each model (internal addresses: admins only)."""
        choices = await self.choices()
        health = self.registry.health()
        in_memory = self.loaded.models if self.loaded is not None else {}
        listed = []
        for model in sorted(self.registry.models(), key=lambda m: (m.provider, m.id)):
            choice = choices.get(model.id, {"enabled": True, "display_name": None})
            if not choice["enabled"] and not include_disabled:
                continue
            seen = choice.get("last_seen_at")
            listed.append(
                {
                    "id": model.id,
                    "name": choice["display_name"] or model.name,
                    "provider": model.provider,
                    "provider_ok": health[model.provider].ok,
                    "enabled": choice["enabled"],
                    "capabilities": dataclasses.asdict(model.capabilities),
                    **detail(
                        model.provider,
                        family=model.family,
                        parameter_size=model.parameter_size,
                        quantization=model.quantization,
                        context_length=model.context_length,
                        size_bytes=model.size_bytes,
                        lifecycle=model.lifecycle,
                        last_seen_at=seen,
                    ),
                    **memory(model.provider, in_memory.get(model.id)),
                    **({"locations": list(model.locations)} if locations else {}),
                }
            )
        return listed


def detail(provider: str, *, last_seen_at: datetime | None, **fields: Any) -> dict[str, Any]:
    """What the catalog shows about a model beyond its name: family, size, quantisation,
    context, disk size, Bedrock's lifecycle (LEGACY models are deprecated), when last seen."""
    return {
        **fields,
        "deprecated": fields.get("lifecycle") == "LEGACY",
        "last_seen_at": last_seen_at.isoformat() if last_seen_at else None,
    }


def memory(provider: str, loaded: Any) -> dict[str, Any]:
    """For Ollama models: loaded in memory now or not, and how much of it sits on the GPU."""
    if provider != "ollama":
        return {"loaded": None, "gpu_ratio": None, "memory_bytes": None}
    if loaded is None:
        return {"loaded": False, "gpu_ratio": None, "memory_bytes": None}
    size = loaded.size_bytes
    return {
        "loaded": True,
        "gpu_ratio": round(loaded.size_vram / size, 3) if size else None,
        "memory_bytes": size,
    }
