"""The `Provider` contract and the plain data types that cross it.

Types are slotted dataclasses: they are built per streamed chunk, so they stay cheap.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from .errors import Unsupported

Role = Literal["system", "user", "assistant"]
StopReason = Literal["stop", "length", "content_filter", "cancelled", "error"]


@dataclass(slots=True, frozen=True)
class Image:
    data: bytes
    media_type: str = "image/png"


@dataclass(slots=True, frozen=True)
class ChatMessage:
    role: Role
    text: str
    images: tuple[Image, ...] = ()


@dataclass(slots=True, frozen=True)
class ChatOptions:
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(slots=True, frozen=True)
class ChatRequest:
    model: str
    messages: Sequence[ChatMessage]
    options: ChatOptions = field(default_factory=ChatOptions)
    stream: bool = True


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
class ChatEnd:
    """The last event of every chat stream, also when the upstream failed mid-stream."""

    stop_reason: StopReason
    usage: Usage = field(default_factory=Usage)
    error: str | None = None
    # Provider-reported extras (Ollama's durations in ns, Bedrock's latencyMs), kept as given.
    metrics: dict[str, int | float] = field(default_factory=dict)


ChatEvent = TextDelta | ReasoningDelta | ChatEnd


@dataclass(slots=True, frozen=True)
class ModelCapabilities:
    chat: bool = True
    streaming: bool = True
    system_prompt: bool = True
    vision: bool = False
    embeddings: bool = False
    reasoning: bool = False


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

    `chat` is an async generator: it yields `TextDelta`/`ReasoningDelta` events and always ends
    with exactly one `ChatEnd`. Errors before the first event are raised as `ProviderError`s;
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
