"""What every model call goes through, from the chat UI or /v1: routing, the key's model
allow-list, rate limits and quotas before; token accounting and the usage row after."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import structlog

from providers.base import Provider, Usage

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


def check_model_allowed(principal: Principal, model_id: str) -> None:
    allowed = principal.api_key.allowed_models if principal.api_key else None
    if allowed is not None and model_id not in allowed:
        bare = model_id.partition("/")[2]
        if not bare or bare not in allowed:
            raise Forbidden(
                f"this API key may not use model '{model_id}'", code="model_not_allowed"
            )


def model_allowed(principal: Principal, model_id: str) -> bool:
    allowed = principal.api_key.allowed_models if principal.api_key else None
    return allowed is None or model_id in allowed


async def admit(state: Any, principal: Principal, model_id: str) -> ModelCall:
    """Raises ModelNotFound, Forbidden or RateLimited; otherwise the call may proceed."""
    check_model_allowed(principal, model_id)
    provider, model = state.registry.resolve(model_id)
    await state.catalog.check_enabled(model_id)
    buckets = buckets_for(principal, await state.default_limits())
    await state.limiter.admit(buckets)
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
) -> None:
    """Counts the tokens against the caller's quotas and writes the usage row. Never raises:
    the answer has been given, and a bookkeeping failure must not turn it into an error."""
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
