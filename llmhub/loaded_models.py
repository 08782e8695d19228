"""What Ollama holds in memory right now (`/api/ps`), refreshed in the background for the
metrics and the catalog's detail, so neither waits on Ollama when asked."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog

from providers.errors import LLMHubError
from providers.registry import Registry

log = structlog.get_logger("llmhub.loaded_models")


class LoadedModels:
    def __init__(self, registry: Registry, *, interval: float) -> None:
        self.registry = registry
        self.interval = interval
        self.models: dict[str, Any] = {}  # name -> providers.ollama.LoadedModel
        self.error: str | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if "ollama" in self.registry.providers and self._task is None:
            self._task = asyncio.create_task(self._refresh_forever(), name="ollama-ps")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def refresh(self) -> None:
        ollama: Any = self.registry.providers.get("ollama")
        if ollama is None or not self.registry.health()["ollama"].ok:
            self.models = {}
            return
        try:
            async with asyncio.timeout(self.registry.call_timeout):
                loaded = await ollama.loaded_models()
        except (LLMHubError, TimeoutError) as exc:
            self.error = getattr(exc, "message", None) or "timed out"
            return
        self.models = {m.name: m for m in loaded}
        self.error = None

    async def _refresh_forever(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # never let the poller die; the next round tries again
                log.exception("could not read Ollama's loaded models")
            await asyncio.sleep(self.interval)
