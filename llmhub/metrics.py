"""Every Prometheus metric llmhub exports, in one prometheus-client registry per app.

Cheap on the hot path: HTTP metrics are observed once per request (in the access-log
middleware), model-call metrics once per call (`model_calls.record`), never per streamed
chunk. Figures that mirror state (the database pool, provider health, models Ollama holds in
memory, running generations, Bedrock's retries) are read when Prometheus scrapes, by
`_StateCollector`, rather than kept up to date on every change.

Cardinality is bounded: routes by template, models only when the catalog lists them (else
"other"), errors by their code in the error tree; nothing per user or key.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from providers.base import Usage

log = structlog.get_logger("llmhub.metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST
OTHER_MODEL = "other"
LOOP_LAG_INTERVAL = 0.5  # seconds between event-loop lag probes

_FAST = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_TTFT = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
_CALL = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
_TOKENS_PER_SECOND = (1, 2, 5, 10, 20, 35, 50, 75, 100, 150, 250, 500)
_ACQUIRE = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)
_LAG = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


class Metrics:
    """The app's instruments. `bind(state)` once the lifespan has built what they mirror."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "llmhub_http_requests",
            "HTTP requests answered, by route template and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "llmhub_http_request_duration_seconds",
            "Time to answer an HTTP request (a stream counts until its end)",
            ["method", "route"],
            buckets=_FAST,
            registry=r,
        )
        self.open_streams = Gauge(
            "llmhub_open_streams", "Server-sent event responses open now", registry=r
        )
        labels = ["provider", "model"]
        self.model_calls = Counter(
            "llmhub_model_calls",
            "Model calls by outcome (complete, stopped, error, interrupted)",
            [*labels, "preset", "outcome"],
            registry=r,
        )
        self.ttft = Histogram(
            "llmhub_model_ttft_seconds",
            "Time from the call to the model's first output",
            labels,
            buckets=_TTFT,
            registry=r,
        )
        self.call_duration = Histogram(
            "llmhub_model_call_duration_seconds",
            "Duration of a model call, start to last token",
            labels,
            buckets=_CALL,
            registry=r,
        )
        self.output_rate = Histogram(
            "llmhub_model_output_tokens_per_second",
            "Output tokens per second after the first token",
            labels,
            buckets=_TOKENS_PER_SECOND,
            registry=r,
        )
        self.tokens = Counter(
            "llmhub_model_tokens",
            "Tokens used by model calls (kind: input, output, cached)",
            [*labels, "kind"],
            registry=r,
        )
        self.upstream_errors = Counter(
            "llmhub_upstream_errors",
            "Failed model calls by provider and error code",
            ["provider", "kind"],
            registry=r,
        )
        self.rejections = Counter(
            "llmhub_model_call_rejections",
            "Model calls refused by a rate limit or quota, by limit",
            ["reason"],
            registry=r,
        )
        self.db_acquire = Histogram(
            "llmhub_db_pool_acquire_seconds",
            "Time to get a connection from the PostgreSQL pool",
            buckets=_ACQUIRE,
            registry=r,
        )
        self.loop_lag = Gauge(
            "llmhub_event_loop_lag_seconds",
            "How late the last event-loop probe woke up",
            registry=r,
        )
        self.loop_lag_histogram = Histogram(
            "llmhub_event_loop_lag_histogram_seconds",
            "How late event-loop probes woke up",
            buckets=_LAG,
            registry=r,
        )
        ProcessCollector(registry=r)  # RSS, CPU seconds, open file descriptors
        self._state: Any = None
        r.register(_StateCollector(self))
        self._lag_task: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def bind(self, state: Any) -> None:
        """Start mirroring the app's state and probing the event loop."""
        self._state = state
        pool = getattr(state, "pool", None)
        if pool is not None and hasattr(pool, "on_acquire"):
            pool.on_acquire = self.db_acquire.observe
        if self._lag_task is None:
            self._lag_task = asyncio.create_task(self._probe_loop(), name="loop-lag-probe")

    async def aclose(self) -> None:
        if self._lag_task is not None:
            self._lag_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lag_task
            self._lag_task = None

    async def _probe_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(LOOP_LAG_INTERVAL)
            lag = max(0.0, loop.time() - started - LOOP_LAG_INTERVAL)
            self.loop_lag.set(lag)
            self.loop_lag_histogram.observe(lag)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    # -- observations --------------------------------------------------------------------------

    def observe_http(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_duration.labels(method, route).observe(seconds)

    def rejected(self, reason: str) -> None:
        self.rejections.labels(reason).inc()

    def observe_call(
        self,
        *,
        provider: str,
        model: str,
        preset: str | None,
        outcome: str,
        usage: Usage,
        ttft_ms: int | None,
        duration_ms: int | None,
        error_kind: str | None,
    ) -> None:
        """One finished model call. `model` must already be bounded (see `model_label`)."""
        self.model_calls.labels(provider, model, preset or "", outcome).inc()
        if ttft_ms is not None:
            self.ttft.labels(provider, model).observe(ttft_ms / 1000)
        if duration_ms is not None:
            self.call_duration.labels(provider, model).observe(duration_ms / 1000)
            generating_ms = duration_ms - (ttft_ms or 0)
            if usage.output_tokens > 1 and generating_ms > 0 and outcome == "complete":
                rate = usage.output_tokens / (generating_ms / 1000)
                self.output_rate.labels(provider, model).observe(rate)
        for kind, count in (
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
            ("cached", usage.cached_tokens),
        ):
            if count:
                self.tokens.labels(provider, model, kind).inc(count)
        if error_kind is not None:
            self.upstream_errors.labels(provider, error_kind).inc()

    def model_label(self, provider: str, model: str) -> str:
        """The model as a label value: only models the catalog lists, so a client sending
        random model names cannot grow the series without bound."""
        registry = getattr(self._state, "registry", None)
        if registry is not None and registry.has_model(provider, model):
            return model
        return OTHER_MODEL


class _StateCollector(Collector):
    """Gauges and counters read from the app's state at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Metric]:
        return []  # the families depend on state; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        state = self.metrics._state
        if state is None:
            return
        yield from _pool_metrics(getattr(state, "pool", None))
        yield from _provider_metrics(getattr(state, "registry", None))
        yield from _loaded_model_metrics(getattr(state, "loaded_models", None))
        generations = getattr(state, "generations", None)
        if generations is not None:
            running = GaugeMetricFamily(
                "llmhub_active_generations", "Chat answers being generated now"
            )
            running.add_metric([], generations.running_count)
            yield running


def _pool_metrics(pool: Any) -> Iterator[Metric]:
    if pool is None:
        return
    size = pool.get_size()
    figures = {
        "llmhub_db_pool_size": ("Connections open in the pool", size),
        "llmhub_db_pool_in_use": ("Connections lent out", size - pool.get_idle_size()),
        "llmhub_db_pool_max": ("The pool's maximum size", pool.get_max_size()),
        "llmhub_db_pool_waiting": (
            "Acquirers waiting for a connection",
            getattr(pool, "waiting", 0),
        ),
    }
    for name, (documentation, value) in figures.items():
        family = GaugeMetricFamily(name, documentation)
        family.add_metric([], value)
        yield family


def _provider_metrics(registry: Any) -> Iterator[Metric]:
    if registry is None:
        return
    up = GaugeMetricFamily("llmhub_provider_up", "1 when the provider answers", labels=["provider"])
    latency = GaugeMetricFamily(
        "llmhub_provider_probe_latency_seconds",
        "Latency of the provider's last health probe",
        labels=["provider"],
    )
    for name, health in registry.health().items():
        up.add_metric([name], 1 if health.ok else 0)
        if health.latency_ms is not None:
            latency.add_metric([name], health.latency_ms / 1000)
    yield up
    yield latency
    bedrock = registry.providers.get("bedrock")
    attempts = getattr(bedrock, "attempts", None)
    if attempts is not None:
        retries = CounterMetricFamily(
            "llmhub_bedrock_retries", "Bedrock attempts after the first (botocore's retries)"
        )
        retries.add_metric([], attempts.retries)
        throttles = CounterMetricFamily(
            "llmhub_bedrock_throttles", "Bedrock responses that were throttled"
        )
        throttles.add_metric([], attempts.throttles)
        yield retries
        yield throttles


def _loaded_model_metrics(loaded: Any) -> Iterator[Metric]:
    if loaded is None:
        return
    count = GaugeMetricFamily("llmhub_ollama_loaded_models", "Models Ollama holds in memory")
    size = GaugeMetricFamily(
        "llmhub_ollama_model_memory_bytes",
        "Memory a loaded model takes, by where (vram, ram)",
        labels=["model", "where"],
    )
    gpu = GaugeMetricFamily(
        "llmhub_ollama_model_gpu_ratio",
        "Share of a loaded model held in GPU memory (1 = all of it)",
        labels=["model"],
    )
    models = loaded.models
    count.add_metric([], len(models))
    for name, model in models.items():
        size.add_metric([name, "vram"], model.size_vram)
        size.add_metric([name, "ram"], max(0, model.size_bytes - model.size_vram))
        gpu.add_metric([name], model.size_vram / model.size_bytes if model.size_bytes else 0.0)
    yield count
    yield size
    yield gpu
