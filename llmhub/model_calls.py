"""What every model call goes through, from the chat UI or /v1: routing, the key's model
allow-list, rate limits and quotas before; token accounting and the usage row after."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import structlog

from providers.base import Provider, Usage
from providers.errors import LLMHubError, RateLimited

from .auth.identity import Principal
from .auth.limits import Bucket, buckets_for
from .errors import Forbidden
from .repo.usage import UsageRow, insert_usage

log = structlog.get_logger("llmhub.calls")


@dataclass(slots=True)
class ModelCall:
    """An admitted call: who makes it, to which provider, under which limits."""

    principal: Principal
    provider: Provider
    model: str  # the provider's own id
    buckets: list[Bucket] = field(default_factory=list)

    @property
    def provider_name(self) -> str:
        return self.provider.name


def model_allowed(principal: Principal, model_id: str, provider: str | None = None) -> bool:
    """The key's allow-list may name a model bare (`llama3.2:1b`) or prefixed (`ollama/...`)."""
    allowed = principal.api_key.allowed_models if principal.api_key else None
    if allowed is None:
        return True
    names = {model_id, model_id.partition("/")[2]}
    if provider is not None:
        names.add(f"{provider}/{model_id}")
    return not names.isdisjoint(allowed)


def check_model_allowed(principal: Principal, model_id: str, provider: str) -> None:
    if not model_allowed(principal, model_id, provider):
        raise Forbidden(f"this API key may not use model '{model_id}'", code="model_not_allowed")


async def admit(state: Any, principal: Principal, model_id: str) -> ModelCall:
    """Raises ModelNotFound, Forbidden or RateLimited; otherwise the call may proceed."""
    provider, model = state.registry.resolve(model_id)
    check_model_allowed(principal, model_id, provider.name)
    await state.catalog.check_enabled(model_id)
    buckets = buckets_for(principal, await state.default_limits())
    try:
        await state.limiter.admit(buckets)
    except RateLimited as exc:
        state.metrics.rejected(exc.code)
        raise
    return ModelCall(principal, provider, model, buckets)


async def record(
    state: Any,
    call: ModelCall,
    usage: Usage,
    *,
    status: str,
    ttft_ms: int | None,
    duration_ms: int | None,
    message_id: UUID | None = None,
    error: BaseException | str | None = None,
) -> None:
    """Counts the tokens against the caller's quotas, writes the usage row, the metrics and
    the call's log line. Never raises: the answer has been given, and a bookkeeping failure
    must not turn it into an error. `error` is what failed, if anything: the exception a
    provider raised, or the message a stream ended with."""
    observe(state, call, usage, status=status, ttft_ms=ttft_ms, duration_ms=duration_ms,
            error=error)  # fmt: skip
    try:
        await state.limiter.record_tokens(call.buckets, usage.input_tokens + usage.output_tokens)
        await insert_usage(
            state.pool,
            UsageRow(
                user_id=call.principal.user.id,
                api_key_id=call.principal.api_key.id if call.principal.api_key else None,
                provider=call.provider_name,
                model=call.model,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cached_tokens=usage.cached_tokens,
                exact=usage.exact,
                ttft_ms=ttft_ms,
                duration_ms=duration_ms,
                status=status,
                message_id=message_id,
            ),
        )
    except Exception as exc:
        log.error("could not record usage", error=str(exc), model=call.model)


def observe(
    state: Any,
    call: ModelCall,
    usage: Usage,
    *,
    status: str,
    ttft_ms: int | None,
    duration_ms: int | None,
    error: BaseException | str | None,
) -> None:
    """Metrics and the model-call log line (one per call: a CloudWatch Logs Insights query can
    chart what /metrics shows); a provider found unreachable is marked down at once."""
    provider = call.provider_name
    kind = error_kind(error) if error is not None or status == "error" else None
    if isinstance(error, BaseException):
        state.registry.report_failure(provider, error)
    metrics = state.metrics
    metrics.observe_call(
        provider=provider,
        model=metrics.model_label(provider, call.model),
        preset=None,
        outcome=status,
        usage=usage,
        ttft_ms=ttft_ms,
        duration_ms=duration_ms,
        error_kind=kind,
    )
    key = call.principal.api_key
    log.info(
        "model call",
        request_id=structlog.contextvars.get_contextvars().get("request_id"),
        user_id=str(call.principal.user.id),
        key_id=str(key.id) if key else None,
        provider=provider,
        model=call.model,
        outcome=status,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_tokens=usage.cached_tokens,
        tokens_exact=usage.exact,
        ttft_ms=ttft_ms,
        duration_ms=duration_ms,
        error_kind=kind,
    )


def error_kind(error: BaseException | str | None) -> str:
    """A bounded name for what went wrong: the error's code, or `stream_error` for a stream
    that ended in an error after output had begun."""
    if isinstance(error, LLMHubError):
        return error.code
    if isinstance(error, TimeoutError):
        return "upstream_timeout"
    if isinstance(error, BaseException):
        return "internal_error"
    return "stream_error"
