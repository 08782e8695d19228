"""A `ChatRequest` as Converse/ConverseStream parameters, checked against what the model can do.

Tools go in `toolConfig` (`toolSpec`s and `toolChoice`), calls and results travel as `toolUse`
and `toolResult` blocks. Structured output is forced tool use, the mechanism Bedrock documents for
Claude, Nova and Mistral Large: one tool whose input schema is the wanted JSON, whose input then
is the answer. Claude's extended thinking is `thinking` in `additionalModelRequestFields`;
prompt caching puts `cachePoint` blocks after the system prompt and a long history; a configured
guardrail goes in `guardrailConfig`. Anything the model cannot take is refused here, with the
reason, instead of failing upstream.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..base import ChatMessage, ChatRequest, Image, ReasoningEffort, ToolCall
from ..errors import InvalidRequest, Unsupported
from .models import Features

# Structured output's tool, unless the schema has a name of its own.
ANSWER_TOOL = "json_response"
# Claude's thinking budget per effort; 1024 is the smallest Claude accepts.
THINKING_BUDGETS: dict[ReasoningEffort, int] = {
    "minimal": 1024,
    "low": 2048,
    "medium": 8192,
    "high": 16384,
    "xhigh": 32768,
}
MIN_THINKING_BUDGET = 1024
ANSWER_ROOM = 8192  # tokens left for the answer after thinking, when max_tokens is not set
# A history this long (estimated tokens) gets a cache point: below Claude's smallest cacheable
# prompt (1,024 tokens) a cache point would only cost a cache write.
CACHE_MIN_TOKENS = 1024
TITAN_STOP = re.compile(r"^(\|+|User:)$")
_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
_TOOL_USE_ID = re.compile(r"[^a-zA-Z0-9_-]")
_CACHE_POINT = {"cachePoint": {"type": "default"}}


@dataclass(slots=True, frozen=True)
class ConverseSettings:
    """The provider's settings that shape every Converse call."""

    prompt_caching: bool = False
    guardrail_id: str | None = None
    guardrail_version: str = "DRAFT"
    guardrail_stream_mode: str = "sync"
    default_max_tokens: int = 2048


@dataclass(slots=True)
class ConversePlan:
    """The parameters, and how to read the answer."""

    params: dict[str, Any] = field(default_factory=dict)
    # Structured output: this tool's input is the answer, as text.
    answer_tool: str | None = None
    # parallel_tool_calls=false: keep only the first call (Converse has no such switch).
    single_call: bool = False
    # The model cannot stream tool use: call Converse and replay the answer as a stream.
    whole: bool = False


def plan_converse(
    request: ChatRequest, model_id: str, features: Features, settings: ConverseSettings
) -> ConversePlan:
    plan = ConversePlan(params={"modelId": model_id}, single_call=not request.parallel_tool_calls)
    _check(request, features)
    thinking = _thinking_budget(request, features)
    system = "\n\n".join(m.text for m in request.messages if m.role == "system" and m.text)
    turns = [m for m in request.messages if m.role != "system"]
    caching = settings.prompt_caching and features.prompt_caching
    if system and features.family == "titan_text":
        turns = _fold_system(turns, system)
    elif system:
        plan.params["system"] = [{"text": system}, *([_CACHE_POINT] if caching else [])]
    tool_config = _tool_config(request, plan)
    messages = converse_messages(turns, keep_tools=tool_config is not None)
    if caching and messages and _estimated_tokens(turns) >= CACHE_MIN_TOKENS:
        messages[-1]["content"].append(dict(_CACHE_POINT))
    plan.params["messages"] = messages
    if tool_config is not None:
        plan.params["toolConfig"] = tool_config
        plan.whole = request.stream and not features.streaming_tools
    if config := _inference_config(request, features, settings, thinking):
        plan.params["inferenceConfig"] = config
    if fields := _additional_fields(request, features, thinking):
        plan.params["additionalModelRequestFields"] = fields
    if settings.guardrail_id:
        guardrail = {
            "guardrailIdentifier": settings.guardrail_id,
            "guardrailVersion": settings.guardrail_version,
            "trace": "enabled",
        }
        if request.stream and not plan.whole:
            guardrail["streamProcessingMode"] = settings.guardrail_stream_mode
        plan.params["guardrailConfig"] = guardrail
    return plan


# -- what the model can take --------------------------------------------------------------------


def _check(request: ChatRequest, features: Features) -> None:
    model = request.model
    forced = request.response_format is not None or request.tool_choice.mode in (
        "required",
        "function",
    )
    if request.offers_tools and not features.tools:
        raise Unsupported(f"{model} does not support tools on Bedrock")
    if request.response_format is not None and request.offers_tools:
        raise Unsupported(
            "Bedrock cannot combine response_format with tools: structured output is itself a "
            "forced tool call there"
        )
    if (
        forced
        and (request.offers_tools or request.response_format)
        and not (features.forced_tool_choice)
    ):
        what = "response_format" if request.response_format else "this tool_choice"
        raise Unsupported(
            f"{model} does not support {what} on Bedrock (it needs a forced tool choice, which "
            "only Claude, Nova and Mistral Large take)"
        )
    if request.tool_choice.mode == "function" and request.tool_choice.name not in {
        t.name for t in request.tools
    }:
        raise InvalidRequest(f"tool_choice names {request.tool_choice.name!r}, not in tools")
    temperature = request.options.temperature
    if temperature is not None and not 0 <= temperature <= 1:
        raise InvalidRequest(
            f"temperature: Bedrock accepts 0 to 1, not {temperature:g}", code="out_of_range"
        )
    if features.family == "titan_text":
        for stop in request.options.stop:
            if not TITAN_STOP.match(stop):
                raise InvalidRequest(
                    f"stop: Titan accepts only '|' (one or more) or 'User:' as stop sequences, "
                    f"not {stop!r}",
                    code="out_of_range",
                )
    if request.wants_reasoning and not features.reasoning:
        raise Unsupported(f"{model} cannot reason on Bedrock: reasoning_effort is not supported")


def _thinking_budget(request: ChatRequest, features: Features) -> int | None:
    """Claude's thinking budget for this call, or None when it does not think."""
    effort = request.options.reasoning_effort
    if effort is None or effort == "none" or not features.claude_thinking:
        return None
    if _in_tool_loop(request.messages):
        # Mid tool loop Claude wants its earlier thinking (with the signature it gave) back in
        # the assistant turn; OpenAI clients do not keep it, so this step does not think.
        return None
    if request.response_format is not None or request.tool_choice.mode in ("required", "function"):
        raise Unsupported(
            "Claude cannot reason while a tool call is forced (response_format or tool_choice)"
        )
    options = request.options
    if (options.temperature is not None and options.temperature != 1) or options.top_k is not None:
        raise InvalidRequest(
            "temperature and top_k cannot be set while Claude is reasoning (reasoning_effort)",
            code="out_of_range",
        )
    if options.top_p is not None and options.top_p < 0.95:
        raise InvalidRequest(
            "top_p: Claude accepts 0.95 to 1 while reasoning (reasoning_effort)",
            code="out_of_range",
        )
    budget = THINKING_BUDGETS[effort]
    max_tokens = _max_tokens(request, features, None)
    if max_tokens is not None:
        if max_tokens <= MIN_THINKING_BUDGET:
            raise InvalidRequest(
                f"max_tokens: must be more than {MIN_THINKING_BUDGET} while Claude is reasoning "
                "(its smallest thinking budget)",
                code="out_of_range",
            )
        budget = min(budget, max_tokens - 1)
    return budget


def _in_tool_loop(messages: Sequence[ChatMessage]) -> bool:
    assistants = [m for m in messages if m.role == "assistant"]
    return bool(assistants) and bool(assistants[-1].tool_calls) and messages[-1].role == "tool"


# -- messages ---------------------------------------------------------------------------------


def _image_block(image: Image) -> dict[str, Any]:
    fmt = _IMAGE_FORMATS.get(image.media_type.lower())
    if fmt is None:
        raise InvalidRequest(f"Bedrock does not accept images of type {image.media_type!r}")
    return {"image": {"format": fmt, "source": {"bytes": image.data}}}


def _fold_system(messages: Sequence[ChatMessage], system: str) -> list[ChatMessage]:
    """Prepend the system prompt to the first user turn, for models without a system field."""
    folded = list(messages)
    for i, message in enumerate(folded):
        if message.role == "user":
            text = f"{system}\n\n{message.text}" if message.text else system
            folded[i] = ChatMessage(role="user", text=text, images=message.images)
            return folded
    return [ChatMessage(role="user", text=system), *folded]


def tool_use_id(call_id: str) -> str:
    """Bedrock's pattern for tool use ids ([a-zA-Z0-9_-], at most 64), applied the same way to a
    call and to the result that answers it."""
    return _TOOL_USE_ID.sub("_", call_id)[:64] or "call"


def _call_input(call: ToolCall) -> dict[str, Any]:
    try:
        value = json.loads(call.arguments) if call.arguments.strip() else {}
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise InvalidRequest(
            f"tool call {call.id!r}: Bedrock needs the arguments of a tool call as a JSON object"
        )
    return value


def _blocks(message: ChatMessage, *, keep_tools: bool) -> list[dict[str, Any]]:
    if message.role == "tool":
        if keep_tools:
            result = {
                "toolUseId": tool_use_id(message.tool_call_id or ""),
                "content": [{"text": message.text or "(no output)"}],
            }
            return [{"toolResult": result}]
        name = f" {message.name}" if message.name else ""
        return [{"text": f"[result of tool{name}]\n{message.text}"}]
    blocks = [_image_block(image) for image in message.images]
    if message.text:
        blocks.append({"text": message.text})
    for call in message.tool_calls:
        if keep_tools:
            use = {"toolUseId": tool_use_id(call.id), "name": call.name, "input": _call_input(call)}
            blocks.append({"toolUse": use})
        else:
            blocks.append({"text": f"[called tool {call.name} with {call.arguments}]"})
    return blocks


def converse_messages(
    messages: Sequence[ChatMessage], *, keep_tools: bool = True
) -> list[dict[str, Any]]:
    """Converse messages; same-role neighbours merge, as Converse requires alternating roles.

    Tool results travel in user turns. Without a `toolConfig` Bedrock refuses tool blocks, so
    then calls and results are told as text."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role = "user" if message.role == "tool" else message.role
        blocks = _blocks(message, keep_tools=keep_tools)
        if not blocks:
            continue
        if out and out[-1]["role"] == role:
            previous = out[-1]["content"]
            if "text" in previous[-1] and "text" in blocks[0]:
                previous[-1] = {"text": f"{previous[-1]['text']}\n\n{blocks[0]['text']}"}
                blocks = blocks[1:]
            previous.extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return out


def _estimated_tokens(messages: Sequence[ChatMessage]) -> int:
    return sum(len(m.text) + sum(len(c.arguments) for c in m.tool_calls) for m in messages) // 4


# -- tools, sampling, extras ----------------------------------------------------------------------


def _tool_config(request: ChatRequest, plan: ConversePlan) -> dict[str, Any] | None:
    if request.response_format is not None:
        form = request.response_format
        name = tool_use_id(form.name or ANSWER_TOOL)
        schema = dict(form.schema) if form.schema is not None else {"type": "object"}
        spec = {
            "name": name,
            "description": "Give the answer as this JSON object.",
            "inputSchema": {"json": schema},
        }
        plan.answer_tool = name
        return {"tools": [{"toolSpec": spec}], "toolChoice": {"tool": {"name": name}}}
    if not request.offers_tools:
        return None
    tools = []
    for tool in request.tools:
        spec = {"name": tool.name, "inputSchema": {"json": dict(tool.parameters)}}
        if tool.description:
            spec["description"] = tool.description
        tools.append({"toolSpec": spec})
    choice = request.tool_choice
    if choice.mode == "required":
        tool_choice: dict[str, Any] = {"any": {}}
    elif choice.mode == "function":
        tool_choice = {"tool": {"name": choice.name}}
    else:
        tool_choice = {"auto": {}}
    return {"tools": tools, "toolChoice": tool_choice}


def _max_tokens(
    request: ChatRequest, features: Features, settings: ConverseSettings | None
) -> int | None:
    """The caller's max_tokens within the model's maximum; families whose Bedrock default is
    tiny (Titan's 512) get the configured default instead of nothing."""
    value = request.options.max_tokens
    if value is None and settings is not None and features.family == "titan_text":
        value = settings.default_max_tokens
    if value is not None and features.max_output is not None:
        value = min(value, features.max_output)
    return value


def _inference_config(
    request: ChatRequest, features: Features, settings: ConverseSettings, thinking: int | None
) -> dict[str, Any]:
    options = request.options
    max_tokens = _max_tokens(request, features, settings)
    if thinking is not None and max_tokens is None:
        max_tokens = thinking + ANSWER_ROOM
        if features.max_output is not None:
            max_tokens = min(max_tokens, features.max_output)
    values = {
        "maxTokens": max_tokens,
        "temperature": options.temperature,
        "topP": options.top_p,
        "stopSequences": list(options.stop) or None,
    }
    return {key: value for key, value in values.items() if value is not None}


def _additional_fields(
    request: ChatRequest, features: Features, thinking: int | None
) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if thinking is not None:
        fields["thinking"] = {"type": "enabled", "budget_tokens": thinking}
    top_k = request.options.top_k
    if top_k is not None:
        # Claude and Nova take top_k as a model-specific field; other families have none.
        if features.base.startswith("anthropic."):
            fields["top_k"] = top_k
        elif features.base.startswith("amazon.nova-"):
            fields["inferenceConfig"] = {"topK": top_k}
    return fields
