"""The providers a mode enables, and the merged model catalog that routes a model id to one.

The catalog is refreshed in the background on a TTL, never on the request path; each provider
call is bounded by a timeout so a provider that is down cannot delay the others. Health is
probed separately and often (`probe_interval`, a cheap call per provider), and a model call
that finds its provider unreachable marks it down at once (`report_failure`), so readiness is
always answered from memory and never lags an outage by a catalog TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import difflib
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

import structlog

from .base import ModelInfo, Provider, ProviderHealth
from .errors import AuthError, ModelNotFound, ProviderError, ProviderUnavailable

if TYPE_CHECKING:
    from llmhub.config import Settings

log = structlog.get_logger("llmhub.registry")


class Registry:
    def __init__(
        self,
        providers: Mapping[str, Provider],
        *,
        ttl: float = 300.0,
        call_timeout: float = 5.0,
        probe_interval: float = 5.0,
    ) -> None:
        self.providers = dict(providers)
        self.ttl = ttl
        self.call_timeout = call_timeout
        self.probe_interval = probe_interval
        self._models: dict[str, dict[str, ModelInfo]] = {name: {} for name in self.providers}
        self._health: dict[str, ProviderHealth] = {
            name: ProviderHealth(ok=False, detail="not checked yet") for name in self.providers
        }
        self._refreshed_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._probe_task: asyncio.Task[None] | None = None
        self._last_error: dict[str, tuple[str, float]] = {}
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
            detail = _describe(exc)
            self._set_health(name, ProviderHealth(ok=False, detail=detail))
            log.warning("provider catalog refresh failed", provider=name, error=detail)
            return
        self._models[name] = {m.id: m for m in models}
        latency = round((time.perf_counter() - started) * 1000, 1)
        self._set_health(name, ProviderHealth(ok=True, latency_ms=latency))
        if self.on_models is not None:
            await self.on_models(name, models)

    async def refresh_provider(self, name: str) -> None:
        """Refresh one provider now (after a pull or delete), without waiting for the TTL."""
        await self._refresh_one(name, self.providers[name])

    def start(self) -> None:
        """Refresh now and then every `ttl` seconds, and probe health every `probe_interval`
        seconds, in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._refresh_forever(), name="catalog-refresh")
        if self._probe_task is None:
            self._probe_task = asyncio.create_task(self._probe_forever(), name="health-probe")

    @property
    def refreshing(self) -> bool:
        """Whether the background refresh started by `start` is running (`aclose` stops it)."""
        return self._task is not None and not self._task.done()

    async def _refresh_forever(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.ttl)

    # -- health ------------------------------------------------------------------------------

    async def probe(self) -> None:
        """Ask every provider for its health now (each bounded by `call_timeout`)."""
        await asyncio.gather(*(self._probe_one(name, p) for name, p in self.providers.items()))

    async def _probe_forever(self) -> None:
        await self._first_refresh.wait()  # the first refresh has just set every provider's state
        while True:
            await asyncio.sleep(self.probe_interval)
            await self.probe()

    async def _probe_one(self, name: str, provider: Provider) -> None:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.call_timeout):
                health = await provider.health()
        except Exception as exc:  # a probe that fails in any way means the provider is down
            health = ProviderHealth(ok=False, detail=_describe(exc))
        if health.ok and health.latency_ms is None:
            latency = round((time.perf_counter() - started) * 1000, 1)
            health = dataclasses.replace(health, latency_ms=latency)
        was_ok = self._health[name].ok
        self._set_health(name, health)
        if health.ok and not was_ok:
            log.info("provider is back", provider=name, latency_ms=health.latency_ms)
            # What it offers may have changed while it was away (or it was down at start).
            await self.refresh_provider(name)
        elif was_ok and not health.ok:
            log.warning("provider is down", provider=name, error=health.detail)

    def report_failure(self, name: str, exc: BaseException) -> None:
        """A model call failed: an unreachable provider (or one refusing our credentials) is
        marked down at once; the next probe marks it up again if it answers."""
        if name not in self._health or not isinstance(exc, ProviderUnavailable | AuthError):
            return
        detail = exc.message if isinstance(exc, ProviderError) else str(exc)
        if self._health[name].ok:
            log.warning("provider is down", provider=name, error=detail, reason="a call failed")
        self._set_health(name, ProviderHealth(ok=False, detail=detail))

    def _set_health(self, name: str, health: ProviderHealth) -> None:
        if not health.ok and health.detail:
            self._last_error[name] = (health.detail, time.time())
        self._health[name] = health

    async def wait_first_refresh(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._first_refresh.wait()
        return self._first_refresh.is_set()

    def models(self) -> list[ModelInfo]:
        return [m for by_id in self._models.values() for m in by_id.values()]

    def health(self) -> dict[str, ProviderHealth]:
        return dict(self._health)

    def last_errors(self) -> dict[str, tuple[str, float]]:
        """Each provider's most recent failure and when it happened (epoch seconds)."""
        return dict(self._last_error)

    def has_model(self, provider: str, model_id: str) -> bool:
        """Whether the catalog lists this model (metrics label only catalog models)."""
        return model_id in self._models.get(provider, ())

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
        for task in (self._task, self._probe_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._probe_task = None
        await asyncio.gather(*(p.aclose() for p in self.providers.values()), return_exceptions=True)


def build_registry(settings: Settings) -> Registry:
    """local → Ollama; hybrid → Ollama and Bedrock; aws → Bedrock, plus Ollama when configured."""
    providers: dict[str, Provider] = {}
    o = settings.ollama
    if len(settings.ollama_urls) > 1 or (settings.ollama_urls and o.dns_discovery):
        from .ollama_pool import OllamaPool

        providers["ollama"] = OllamaPool(
            settings.ollama_urls,
            dns_discovery=o.dns_discovery,
            connect_timeout=o.connect_timeout,
            read_timeout=o.read_timeout,
            keep_alive=o.keep_alive,
        )
    elif settings.ollama_url is not None:
        from .ollama import OllamaProvider

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
            default_max_tokens=b.default_max_tokens,
            prompt_caching=b.prompt_caching,
            guardrail_id=b.guardrail_id,
            guardrail_version=b.guardrail_version,
            guardrail_stream_mode=b.guardrail_stream_mode,
        )
    return Registry(providers, ttl=settings.catalog_ttl, probe_interval=settings.health_interval)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ProviderError):
        return exc.message
    return str(exc) or type(exc).__name__
