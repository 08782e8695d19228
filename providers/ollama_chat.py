"""A `ChatRequest` as Ollama's `/api/chat` body, and Ollama's tool calls back as events.

Ollama (docs/api.md) takes `tools` and gives `message.tool_calls` (arguments as a JSON object, an
`id` since 0.12.10), takes a `tool` message's result with `tool_name`, structured output as
`format` ("json" or a JSON Schema) and reasoning as `think` (a boolean or a level).

Ollama has no `tool_choice`. `none` sends no tools; `required` and a named function are made
real by constraining the output with `format` to the arguments of the tool(s) that may be
called, then turning that JSON into the tool call (`ForcedToolCall`).
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from .base import (
    ChatEvent,
    ChatMessage,
    ChatOptions,
    ChatRequest,
    ReasoningEffort,
    Tool,
    ToolCall,
    ToolCallDelta,
)
from .errors import InvalidRequest, UpstreamError

# OpenAI's efforts on Ollama's levels. "xhigh" goes to "high": "max" is newer than many servers.
_THINK: Mapping[ReasoningEffort, bool | str] = {
    "none": False,
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
}


def chat_payload(request: ChatRequest, *, keep_alive: str | None) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model": request.model,
        "messages": messages_json(request.messages),
        "stream": request.stream,
    }
    if options := options_json(request.options):
        payload["options"] = options
    if request.offers_tools:
        payload["tools"] = [tool_json(tool) for tool in request.tools]
    forced = forced_schema(request)
    if forced is not None:
        payload["format"] = forced
    elif request.response_format is not None:
        schema = request.response_format.schema
        payload["format"] = dict(schema) if schema is not None else "json"
    effort = request.options.reasoning_effort
    if effort is not None:
        payload["think"] = _THINK[effort]
    chosen_keep_alive = request.options.keep_alive
    if chosen_keep_alive is None:
        chosen_keep_alive = keep_alive
    if chosen_keep_alive is not None:
        payload["keep_alive"] = chosen_keep_alive
    return payload


def messages_json(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    names: dict[str, str] = {}  # tool call id → function name, for results that omit it
    out = []
    for message in messages:
        item: dict[str, Any] = {"role": message.role, "content": message.text}
        if message.images:
            item["images"] = [base64.b64encode(i.data).decode("ascii") for i in message.images]
        if message.tool_calls:
            item["tool_calls"] = [_call_json(call) for call in message.tool_calls]
            names.update((call.id, call.name) for call in message.tool_calls)
        if message.role == "tool":
            name = message.name or names.get(message.tool_call_id or "")
            if name:
                item["tool_name"] = name
            if message.tool_call_id:
                item["tool_call_id"] = message.tool_call_id
        out.append(item)
    return out


def _call_json(call: ToolCall) -> dict[str, Any]:
    try:
        arguments = json.loads(call.arguments) if call.arguments.strip() else {}
    except ValueError:
        arguments = None
    if not isinstance(arguments, dict):
        raise InvalidRequest(
            f"tool call {call.id!r}: Ollama needs the arguments of a tool call as a JSON object"
        )
    return {"id": call.id, "function": {"name": call.name, "arguments": arguments}}


def tool_json(tool: Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name, "parameters": dict(tool.parameters)}
    if tool.description:
        function["description"] = tool.description
    return {"type": "function", "function": function}


def options_json(options: ChatOptions) -> dict[str, Any]:
    values = {
        "num_predict": options.max_tokens,
        "temperature": options.temperature,
        "top_p": options.top_p,
        "stop": list(options.stop) or None,
        "seed": options.seed,
        "top_k": options.top_k,
        "min_p": options.min_p,
        "repeat_penalty": options.repeat_penalty,
        "frequency_penalty": options.frequency_penalty,
        "presence_penalty": options.presence_penalty,
        "num_ctx": options.num_ctx,
    }
    return {key: value for key, value in values.items() if value is not None}


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


class ToolCalls:
    """Ollama's `tool_calls` lists as `ToolCallDelta`s, numbered across the whole reply."""

    __slots__ = ("_limit", "count")

    def __init__(self, request: ChatRequest) -> None:
        self.count = 0
        # OpenAI's parallel_tool_calls=false means at most one call; Ollama has no such knob.
        self._limit = None if request.parallel_tool_calls else 1

    def events(self, calls: Any) -> list[ChatEvent]:
        out: list[ChatEvent] = []
        for call in calls if isinstance(calls, list) else ():
            if self._limit is not None and self.count >= self._limit:
                break
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict) or not function.get("name"):
                raise UpstreamError(f"Ollama sent a malformed tool call: {call!r}")
            arguments = function.get("arguments")
            text = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
            call_id = call.get("id") or new_call_id()
            out.append(ToolCallDelta(self.count, text, id=call_id, name=function["name"]))
            self.count += 1
        return out


def _callable(request: ChatRequest) -> list[Tool]:
    choice = request.tool_choice
    if choice.mode == "function":
        return [t for t in request.tools if t.name == choice.name]
    return list(request.tools) if choice.mode == "required" else []


def forced_schema(request: ChatRequest) -> dict[str, Any] | None:
    """The `format` that makes the model's answer a call of one of the tools it must call."""
    tools = _callable(request)
    if not tools:
        return None
    if len(tools) == 1:
        return dict(tools[0].parameters)
    return {
        "anyOf": [
            {
                "type": "object",
                "properties": {"name": {"const": t.name}, "arguments": dict(t.parameters)},
                "required": ["name", "arguments"],
            }
            for t in tools
        ]
    }


class ForcedToolCall:
    """Collects the constrained answer of a forced call and turns it into the call."""

    __slots__ = ("_parts", "_tools")

    def __init__(self, request: ChatRequest) -> None:
        self._tools = _callable(request)
        self._parts: list[str] = []

    @classmethod
    def for_request(cls, request: ChatRequest) -> ForcedToolCall | None:
        return cls(request) if _callable(request) else None

    def feed(self, text: str) -> None:
        self._parts.append(text)

    def events(self) -> list[ChatEvent]:
        text = "".join(self._parts).strip()
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if len(self._tools) == 1:
            name, arguments = self._tools[0].name, value
        elif isinstance(value, dict) and isinstance(value.get("name"), str):
            name, arguments = value["name"], value.get("arguments")
        else:
            name, arguments = "", None
        if not name or not isinstance(arguments, dict):
            raise UpstreamError(
                f"Ollama's answer to a forced tool call is not a JSON object of its arguments: "
                f"{text[:200]!r}"
            )
        return [ToolCallDelta(0, json.dumps(arguments), id=new_call_id(), name=name)]
