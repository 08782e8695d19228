"""The families with no Converse chat (AI21 Jurassic-2, legacy Cohere Command): the conversation
rendered into one prompt, in each model's native InvokeModel body, and their answers read back.

Both families default to a handful of tokens when the body sets none (Jurassic-2 16, Command
20), so every body carries a `max_tokens`: the caller's, else the configured default, within the
model's documented maximum. Streaming Command ends its text with a literal `<EOS_TOKEN>` chunk,
which is not part of the answer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..base import ChatEnd, ChatMessage, ChatRequest, StopReason, Usage, estimate_tokens
from ..errors import InvalidRequest, Unsupported
from .models import Features

COHERE_EOS = "<EOS_TOKEN>"
GUARDRAIL_ACTION = "amazon-bedrock-guardrailAction"
_J2_STOP_REASONS: dict[str, StopReason] = {"endoftext": "stop", "stop": "stop", "length": "length"}
_COHERE_STOP_REASONS: dict[str, StopReason] = {
    "COMPLETE": "stop",
    "MAX_TOKENS": "length",
    "ERROR_TOXIC": "content_filter",
    "ERROR": "error",
}
_COHERE_TEMPERATURE = (0.0, 5.0)  # Command's documented range; Jurassic-2's is 0 to 1


def render_prompt(messages: Sequence[ChatMessage]) -> str:
    """One prompt for completion-only models: system text, then labelled turns, then a cue."""
    if any(m.images for m in messages):
        raise Unsupported("This Bedrock model does not accept images")
    parts = [m.text for m in messages if m.role == "system" and m.text]
    labels = {"user": "User", "assistant": "Assistant", "tool": "Tool"}
    parts += [f"{labels[m.role]}: {m.text}" for m in messages if m.role != "system"]
    parts.append("Assistant:")
    return "\n\n".join(parts)


def _check(request: ChatRequest) -> None:
    if request.tools or request.response_format is not None:
        raise Unsupported(f"{request.model} does not support tools or response_format on Bedrock")
    if request.wants_reasoning:
        raise Unsupported(f"{request.model} cannot reason on Bedrock (reasoning_effort)")


def _max_tokens(request: ChatRequest, features: Features, default: int, prompt: str) -> int:
    value = request.options.max_tokens or default
    if features.max_output is not None:
        value = min(value, features.max_output)
    if request.options.max_tokens is None and features.context_length is not None:
        # Leave the prompt its room in a small context window (Command's is 4,096 in all).
        value = max(1, min(value, features.context_length - estimate_tokens(len(prompt))))
    return value


def _sampling(request: ChatRequest, *, top_p: str, stop: str) -> dict[str, Any]:
    options = request.options
    values = {"temperature": options.temperature, top_p: options.top_p, stop: list(options.stop)}
    return {key: value for key, value in values.items() if value not in (None, [])}


def jurassic_body(request: ChatRequest, features: Features, default_max: int) -> dict[str, Any]:
    _check(request)
    temperature = request.options.temperature
    if temperature is not None and temperature > 1:
        raise InvalidRequest(
            f"temperature: Jurassic-2 accepts 0 to 1, not {temperature:g}", code="out_of_range"
        )
    prompt = render_prompt(request.messages)
    body: dict[str, Any] = {"prompt": prompt}
    body["maxTokens"] = _max_tokens(request, features, default_max, prompt)
    return body | _sampling(request, top_p="topP", stop="stopSequences")


def cohere_command_body(
    request: ChatRequest, features: Features, default_max: int, *, stream: bool
) -> dict[str, Any]:
    _check(request)
    temperature = request.options.temperature
    low, high = _COHERE_TEMPERATURE
    if temperature is not None and not low <= temperature <= high:
        raise InvalidRequest(
            f"temperature: Cohere Command accepts {low:g} to {high:g}, not {temperature:g}",
            code="out_of_range",
        )
    prompt = render_prompt(request.messages)
    body: dict[str, Any] = {"prompt": prompt}
    body["max_tokens"] = _max_tokens(request, features, default_max, prompt)
    body |= _sampling(request, top_p="p", stop="stop_sequences")
    if request.options.top_k is not None:
        body["k"] = min(500, request.options.top_k)
    return body | {"stream": stream}


def cohere_text(text: str) -> str:
    """A Command chunk's text without the end-of-sequence marker Bedrock streams as text."""
    return text.removesuffix(COHERE_EOS)


# -- answers ------------------------------------------------------------------------------------


def native_usage(
    headers: Mapping[str, str], metrics: Mapping[str, Any] | None, prompt: str, output: str
) -> Usage:
    """Exact counts from invocation metrics or response headers, else a chars/4 estimate."""
    if metrics and "inputTokenCount" in metrics:
        return Usage(
            input_tokens=int(metrics["inputTokenCount"]),
            output_tokens=int(metrics.get("outputTokenCount", 0)),
        )
    if "x-amzn-bedrock-input-token-count" in headers:
        return Usage(
            input_tokens=int(headers["x-amzn-bedrock-input-token-count"]),
            output_tokens=int(headers.get("x-amzn-bedrock-output-token-count", 0)),
        )
    return Usage(
        input_tokens=estimate_tokens(len(prompt)),
        output_tokens=estimate_tokens(len(output)),
        exact=False,
    )


def invocation_metrics(metrics: Mapping[str, Any] | None) -> dict[str, int | float]:
    """Latency figures from `amazon-bedrock-invocationMetrics`; token counts go to `Usage`."""
    counts = ("inputTokenCount", "outputTokenCount")
    return {
        k: v for k, v in (metrics or {}).items() if isinstance(v, int | float) and k not in counts
    }


def guardrail_intervened(payload: Mapping[str, Any]) -> bool:
    return payload.get(GUARDRAIL_ACTION) == "INTERVENED"


def jurassic_end(payload: Mapping[str, Any], usage: Usage) -> ChatEnd:
    completion = payload["completions"][0]
    if not usage.exact and "tokens" in payload.get("prompt", {}):
        usage = Usage(
            input_tokens=len(payload["prompt"]["tokens"]),
            output_tokens=len(completion["data"].get("tokens", ())),
        )
    reason = _J2_STOP_REASONS.get(completion.get("finishReason", {}).get("reason", ""), "stop")
    if guardrail_intervened(payload):
        reason = "content_filter"
    return ChatEnd(stop_reason=reason, usage=usage)


def cohere_end(final: Mapping[str, Any], usage: Usage, error: str | None = None) -> ChatEnd:
    """How a Cohere Command reply ended: its last generation or stream chunk, or `error`."""
    reason: StopReason = (
        "error" if error else _COHERE_STOP_REASONS.get(final.get("finish_reason", ""), "stop")
    )
    if reason == "error" and not error:
        error = "Cohere reported a generation error"
    if guardrail_intervened(final) and not error:
        reason = "content_filter"
    metrics = invocation_metrics(final.get("amazon-bedrock-invocationMetrics"))
    return ChatEnd(stop_reason=reason, usage=usage, error=error, metrics=metrics)


def encode(body: Mapping[str, Any]) -> str:
    return json.dumps(body)
