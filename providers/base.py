"""The `Provider` contract and the plain data types that cross it.

Types are slotted dataclasses: they are built per streamed chunk, so they stay cheap.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from .errors import Unsupported

Role = Literal["system", "user", "assistant", "tool"]
StopReason = Literal["stop", "length", "content_filter", "tool_calls", "cancelled", "error"]
# OpenAI's scale; each provider maps it onto its own (Ollama's `think`, Claude's budget).
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]


@dataclass(slots=True, frozen=True)
class Image:
    data: bytes
    media_type: str = "image/png"


@dataclass(slots=True, frozen=True)
class ToolCall:
    """A function the model asked to call; `arguments` is JSON text, as OpenAI carries it."""

    id: str
    name: str
    arguments: str


@dataclass(slots=True, frozen=True)
class ChatMessage:
    """One turn. An assistant turn may carry `tool_calls`; a `tool` turn answers the call
    `tool_call_id` (of the function `name`) with `text`."""

    role: Role
    text: str
    images: tuple[Image, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None


@dataclass(slots=True, frozen=True)
class Tool:
    """A function the model may call; `parameters` is its arguments' JSON Schema."""

    name: str
    description: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})
    strict: bool = False


@dataclass(slots=True, frozen=True)
class ToolChoice:
    """auto: the model decides; none: no calls; required: at least one; function: `name`."""

    mode: Literal["auto", "none", "required", "function"] = "auto"
    name: str | None = None


@dataclass(slots=True, frozen=True)
class ResponseFormat:
    """Structured output: any JSON object, or one matching `schema`. The answer is text."""

    type: Literal["json_object", "json_schema"]
    schema: Mapping[str, Any] | None = None
    name: str | None = None
    strict: bool = False


@dataclass(slots=True, frozen=True)
class ChatOptions:
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    reasoning_effort: ReasoningEffort | None = None
    # Ollama's own sampling and runtime options; providers without them ignore them.
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    num_ctx: int | None = None
    keep_alive: str | int | float | None = None


@dataclass(slots=True, frozen=True)
class ChatRequest:
    model: str
    messages: Sequence[ChatMessage]
    options: ChatOptions = field(default_factory=ChatOptions)
    stream: bool = True
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice = field(default_factory=ToolChoice)
    parallel_tool_calls: bool = True
    response_format: ResponseFormat | None = None

    @property
    def offers_tools(self) -> bool:
        return bool(self.tools) and self.tool_choice.mode != "none"

    @property
    def wants_reasoning(self) -> bool:
        effort = self.options.reasoning_effort
        return effort is not None and effort != "none"


def estimate_tokens(chars: int) -> int:
    """About four characters a token: for counts a provider did not (or could not) report."""
    return math.ceil(chars / 4)


def estimate_input_tokens(request: ChatRequest) -> int:
    """An estimate of the prompt's size: every message's text, tool calls and tool schemas."""
    chars = 0
    for message in request.messages:
        chars += len(message.text)
        chars += sum(len(call.name) + len(call.arguments) for call in message.tool_calls)
    chars += sum(len(tool.name) + len(str(tool.parameters)) for tool in request.tools)
    return estimate_tokens(chars)


@dataclass(slots=True, frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    exact: bool = True


@dataclass(slots=True, frozen=True)
class TextDelta:
    text: str


@dataclass(slots=True, frozen=True)
class ReasoningDelta:
    text: str


@dataclass(slots=True, frozen=True)
class ToolCallDelta:
    """A piece of the tool call at `index` (0, 1, … in the order the model made them).

    The first piece of each call carries its `id` and `name`; `arguments` pieces concatenate to
    the call's JSON arguments. Providers that get whole calls send one piece per call.
    """

    index: int
    arguments: str = ""
    id: str | None = None
    name: str | None = None


@dataclass(slots=True, frozen=True)
class ChatEnd:
    """The last event of every chat stream, also when the upstream failed mid-stream."""

    stop_reason: StopReason
    usage: Usage = field(default_factory=Usage)
    error: str | None = None
    # Provider-reported extras (Ollama's durations in ns, Bedrock's latencyMs), kept as given.
    metrics: dict[str, int | float] = field(default_factory=dict)


ChatEvent = TextDelta | ReasoningDelta | ToolCallDelta | ChatEnd


@dataclass(slots=True, frozen=True)
class ModelCapabilities:
    chat: bool = True
    streaming: bool = True
    system_prompt: bool = True
    vision: bool = False
    embeddings: bool = False
    reasoning: bool = False
    tools: bool = False


@dataclass(slots=True, frozen=True)
class ModelInfo:
    id: str
    provider: str
    name: str
    capabilities: ModelCapabilities = field(default_factory=ModelCapabilities)
    context_length: int | None = None
    size_bytes: int | None = None
    family: str | None = None
    parameter_size: str | None = None  # as the provider writes it: "7.6B"
    quantization: str | None = None  # "Q4_K_M"
    lifecycle: str | None = None  # Bedrock's ACTIVE or LEGACY (deprecated, still callable)
    # Which of several servers hold it (providers/ollama_pool.py); empty for a single one.
    locations: tuple[str, ...] = ()


@dataclass(slots=True, frozen=True)
class EmbedRequest:
    model: str
    inputs: Sequence[str]
    dimensions: int | None = None


@dataclass(slots=True, frozen=True)
class EmbedResult:
    vectors: list[list[float]]
    usage: Usage = field(default_factory=Usage)


@dataclass(slots=True, frozen=True)
class ProviderHealth:
    ok: bool
    latency_ms: float | None = None
    detail: str | None = None


@dataclass(slots=True, frozen=True)
class PullProgress:
    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None
    server: str | None = None  # which server, when a pull goes to several


class Provider(ABC):
    """One model backend. Implementations own their HTTP/SDK clients and map their errors.

    `chat` is an async generator: it yields `TextDelta`/`ReasoningDelta`/`ToolCallDelta` events
    and always ends with exactly one `ChatEnd` (`stop_reason="tool_calls"` when the model stopped
    to have its calls run). Errors before the first event are raised as `ProviderError`s;
    errors after it end the stream with `ChatEnd(stop_reason="error")` so partial output is kept.
    Closing the generator early (`aclose()`) must abort the upstream request.
    """

    name: ClassVar[str]
    supports_pull: ClassVar[bool] = False

    @abstractmethod
    async def list_models(self) -> list[ModelInfo]: ...

    @abstractmethod
    def chat(self, request: ChatRequest) -> AsyncGenerator[ChatEvent, None]: ...

    @abstractmethod
    async def embed(self, request: EmbedRequest) -> EmbedResult: ...

    @abstractmethod
    async def health(self) -> ProviderHealth: ...

    @abstractmethod
    async def aclose(self) -> None: ...

    def pull_model(self, name: str) -> AsyncIterator[PullProgress]:
        raise Unsupported(f"{self.name} cannot pull models")

    async def delete_model(self, name: str) -> None:
        raise Unsupported(f"{self.name} cannot delete models")
