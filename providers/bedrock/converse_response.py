"""Converse answers as chat events: a ConverseStream's events one by one, or a whole Converse
response (also replayed as a stream for models that cannot stream tool use)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from ..base import (
    ChatEnd,
    ChatEvent,
    ChatRequest,
    ReasoningDelta,
    StopReason,
    TextDelta,
    ToolCallDelta,
    Usage,
    estimate_input_tokens,
    estimate_tokens,
)
from .converse_request import ConversePlan

log = structlog.get_logger("llmhub.bedrock")

_STOP_REASONS: dict[str, StopReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}


def converse_usage(usage: Mapping[str, Any]) -> Usage:
    """Bedrock counts cached prompt tokens apart from `inputTokens`; OpenAI's prompt_tokens
    include them, so `input_tokens` is the whole prompt here."""
    read = int(usage.get("cacheReadInputTokens", 0))
    written = int(usage.get("cacheWriteInputTokens", 0))
    return Usage(
        input_tokens=int(usage.get("inputTokens", 0)) + read + written,
        output_tokens=int(usage.get("outputTokens", 0)),
        cached_tokens=read,
        cache_write_tokens=written,
    )


def estimated_usage(request: ChatRequest, output_chars: int) -> Usage:
    return Usage(
        input_tokens=estimate_input_tokens(request),
        output_tokens=estimate_tokens(output_chars),
        exact=False,
    )


def stop_reason(raw: str | None, plan: ConversePlan) -> StopReason:
    reason = _STOP_REASONS.get(raw or "", "stop")
    # Structured output is a forced tool call whose input is the answer: the answer is done.
    return "stop" if reason == "tool_calls" and plan.answer_tool else reason


def _log_guardrail(raw: str | None, trace: Mapping[str, Any] | None) -> None:
    if raw == "guardrail_intervened":
        reason = ((trace or {}).get("guardrail") or {}).get("actionReason")
        log.info("bedrock guardrail intervened", action_reason=reason)


@dataclass(slots=True)
class StreamState:
    """What a ConverseStream has told us so far."""

    plan: ConversePlan
    output_chars: int = 0
    emitted: bool = False
    stop_reason: str | None = None
    usage: Usage | None = None
    metrics: dict[str, int | float] = field(default_factory=dict)
    # contentBlockIndex → the call's index, or -1 for the structured answer; dropped calls absent.
    _blocks: dict[int, int] = field(default_factory=dict)
    _calls: int = 0

    def handle(self, event: Mapping[str, Any]) -> ChatEvent | None:
        if delta_event := event.get("contentBlockDelta"):
            delta = delta_event.get("delta", {})
            if text := delta.get("text"):
                self.output_chars += len(text)
                return TextDelta(text)
            if reasoning := delta.get("reasoningContent", {}).get("text"):
                self.output_chars += len(reasoning)
                return ReasoningDelta(reasoning)
            if (use := delta.get("toolUse")) is not None:
                return self._tool_input(delta_event.get("contentBlockIndex", 0), use)
        elif start := event.get("contentBlockStart"):
            use = start.get("start", {}).get("toolUse")
            if use is not None:
                return self._tool_start(start.get("contentBlockIndex", 0), use)
        elif stop := event.get("messageStop"):
            self.stop_reason = stop.get("stopReason")
        elif metadata := event.get("metadata"):
            self.usage = converse_usage(metadata.get("usage", {}))
            if (latency := metadata.get("metrics", {}).get("latencyMs")) is not None:
                self.metrics["latencyMs"] = latency
            _log_guardrail(self.stop_reason, metadata.get("trace"))
        return None

    def _tool_start(self, block: int, use: Mapping[str, Any]) -> ChatEvent | None:
        if use.get("name") == self.plan.answer_tool:
            self._blocks[block] = -1
            return None
        if self.plan.single_call and self._calls:
            return None
        self._blocks[block] = index = self._calls
        self._calls += 1
        return ToolCallDelta(index, "", id=use.get("toolUseId"), name=use.get("name"))

    def _tool_input(self, block: int, use: Mapping[str, Any]) -> ChatEvent | None:
        index = self._blocks.get(block)
        text = use.get("input") or ""
        if index is None or not text:
            return None
        self.output_chars += len(text)
        return TextDelta(text) if index < 0 else ToolCallDelta(index, text)

    def end(self, request: ChatRequest) -> ChatEnd:
        return ChatEnd(
            stop_reason=stop_reason(self.stop_reason, self.plan),
            usage=self.usage or estimated_usage(request, self.output_chars),
            metrics=self.metrics,
        )

    def error(self, request: ChatRequest, message: str) -> ChatEnd:
        usage = self.usage or estimated_usage(request, self.output_chars)
        return ChatEnd(stop_reason="error", usage=usage, error=message, metrics=self.metrics)


def whole_events(response: Mapping[str, Any], plan: ConversePlan) -> list[ChatEvent]:
    """A Converse response as the events a stream of it would have given."""
    content = response.get("output", {}).get("message", {}).get("content", [])
    reasoning = "".join(
        block["reasoningContent"].get("reasoningText", {}).get("text", "")
        for block in content
        if "reasoningContent" in block
    )
    text = "".join(block.get("text", "") for block in content)
    events: list[ChatEvent] = []
    if reasoning:
        events.append(ReasoningDelta(reasoning))
    if text:
        events.append(TextDelta(text))
    calls = 0
    for block in content:
        use = block.get("toolUse")
        if use is None:
            continue
        arguments = json.dumps(use.get("input", {}))
        if use.get("name") == plan.answer_tool:
            events.append(TextDelta(arguments))
        elif not (plan.single_call and calls):
            call_id, name = use.get("toolUseId"), use["name"]
            events.append(ToolCallDelta(calls, arguments, id=call_id, name=name))
            calls += 1
    raw = response.get("stopReason")
    _log_guardrail(raw, response.get("trace"))
    metrics = {"latencyMs": response["metrics"]["latencyMs"]} if "metrics" in response else {}
    events.append(
        ChatEnd(
            stop_reason=stop_reason(raw, plan),
            usage=converse_usage(response.get("usage", {})),
            metrics=metrics,
        )
    )
    return events
