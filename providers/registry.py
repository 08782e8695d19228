"""The providers a mode enables, and the merged model catalog that routes a model id to one.

The catalog is refreshed in the background on a TTL, never on the request path; each provider
call is bounded by a timeout so a provider that is down cannot delay the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

import structlog

from .base import ModelInfo, Provider, ProviderHealth
from .errors import ModelNotFound

if TYPE_CHECKING:
    from llmhub.config import Settings

log = structlog.get_logger("llmhub.registry")


class Registry:
    def __init__(
        self, providers: Mapping[str, Provider], *, ttl: float = 300.0, call_timeout: float = 5.0
    ) -> None:
        self.providers = dict(providers)
        self.ttl = ttl
        self.call_timeout = call_timeout
        self._models: dict[str, dict[str, ModelInfo]] = {name: {} for name in self.providers}
        self._health: dict[str, ProviderHealth] = {
            name: ProviderHealth(ok=False, detail="not checked yet") for name in self.providers
        }
        self._refreshed_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._first_refresh = asyncio.Event()
        # Called with each provider's fresh model list (the app records them in its catalog).
        self.on_models: Callable[[str, list[ModelInfo]], Awaitable[None]] | None = None

    # -- catalog -----------------------------------------------------------------------------

    async def refresh(self) -> None:
        await asyncio.gather(*(self._refresh_one(name, p) for name, p in self.providers.items()))
        self._refreshed_at = time.monotonic()
        self._first_refresh.set()

    async def _refresh_one(self, name: str, provider: Provider) -> None:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.call_timeout):
                models = await provider.list_models()
        except Exception as exc:  # any failure marks the provider down, never the registry
            detail = (
                "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
            )
            self._health[name] = ProviderHealth(ok=False, detail=detail)
            log.warning("provider catalog refresh failed", provider=name, error=detail)
            return
        self._models[name] = {m.id: m for m in models}
        latency = round((time.perf_counter() - started) * 1000, 1)
        self._health[name] = ProviderHealth(ok=True, latency_ms=latency)
        if self.on_models is not None:
            await self.on_models(name, models)

    async def refresh_provider(self, name: str) -> None:
        """Refresh one provider now (after a pull or delete), without waiting for the TTL."""
        await self._refresh_one(name, self.providers[name])

    def start(self) -> None:
        """Refresh now and then every `ttl` seconds, in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._refresh_forever(), name="catalog-refresh")

    async def _refresh_forever(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.ttl)

    async def wait_first_refresh(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._first_refresh.wait()
        return self._first_refresh.is_set()

    def models(self) -> list[ModelInfo]:
        return [m for by_id in self._models.values() for m in by_id.values()]

    def health(self) -> dict[str, ProviderHealth]:
        return dict(self._health)

    # -- routing -----------------------------------------------------------------------------

    def resolve(self, model_id: str) -> tuple[Provider, str]:
        """The provider serving `model_id` and the id it knows the model by."""
        prefix, _, rest = model_id.partition("/")
        if rest and prefix in self.providers:
            # An explicit prefix routes even before the catalog has seen the model (a fresh pull).
            return self.providers[prefix], rest
        for name, by_id in self._models.items():
            if model_id in by_id:
                return self.providers[name], model_id
        known = [m.id for m in self.models()]
        close = difflib.get_close_matches(model_id, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ModelNotFound(f"model '{model_id}' not found{hint}")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.gather(*(p.aclose() for p in self.providers.values()), return_exceptions=True)


def build_registry(settings: Settings) -> Registry:
    """local → Ollama; hybrid → Ollama and Bedrock; aws → Bedrock, plus Ollama when configured."""
    providers: dict[str, Provider] = {}
    if settings.ollama_url is not None:
        from .ollama import OllamaProvider

        o = settings.ollama
        providers["ollama"] = OllamaProvider(
            settings.ollama_url,
            connect_timeout=o.connect_timeout,
            read_timeout=o.read_timeout,
            keep_alive=o.keep_alive,
        )
    if settings.uses_bedrock:
        from .bedrock import BedrockProvider  # aioboto3 is heavy: only bedrock modes import it

        b = settings.bedrock
        providers["bedrock"] = BedrockProvider(
            region=b.region,
            profile=b.profile,
            endpoint_url=b.endpoint_url,
            runtime_endpoint_url=b.runtime_endpoint_url,
            allowed_models=b.allowed_models,
            max_attempts=b.max_attempts,
            connect_timeout=b.connect_timeout,
            read_timeout=b.read_timeout,
        )
    return Registry(providers, ttl=settings.catalog_ttl)
