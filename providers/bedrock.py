"""Amazon Bedrock provider over aioboto3.

Chat goes through Converse/ConverseStream for every family that supports it; AI21 Jurassic-2 and
legacy Cohere Command have no Converse chat, so they get the conversation rendered into one prompt
and their native InvokeModel bodies. Embeddings use InvokeModel with Titan or Cohere bodies.

One long-lived client per service (`bedrock` for the catalog, `bedrock-runtime` for inference) is
created on first use and shared by all requests; botocore does the retrying (adaptive mode).
Every SDK exception is translated to the `providers.errors` tree by `map_error`.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections.abc import AsyncGenerator, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, aclosing, contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import aioboto3
import aiohttp
from aiobotocore.config import AioConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)

from .base import (
    ChatEnd,
    ChatEvent,
    ChatMessage,
    ChatOptions,
    ChatRequest,
    EmbedRequest,
    EmbedResult,
    Image,
    ModelCapabilities,
    ModelInfo,
    Provider,
    ProviderHealth,
    ReasoningDelta,
    StopReason,
    TextDelta,
    Usage,
)
from .bedrock_attempts import AttemptCounter
from .errors import (
    AuthError,
    InvalidRequest,
    ModelNotFound,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    Unsupported,
    UpstreamError,
)

Service = Literal["bedrock", "bedrock-runtime"]
Family = Literal[
    "converse", "titan_text", "jurassic", "cohere_legacy", "titan_embed", "cohere_embed"
]

DEFAULT_RETRY_AFTER = 5.0
HEALTH_TIMEOUT = 5.0
HEALTH_TTL = 10.0
MAX_POOL_CONNECTIONS = 64
COHERE_EMBED_BATCH = 96  # Cohere Embed's limit on texts per call
ACCESS_HINT = "request model access in the Bedrock console (Model access) for this account/region"

# Cross-region inference profile ids prefix the model id with a geography: "us.anthropic.claude-…".
_GEO_PREFIXES = frozenset({"us", "eu", "apac", "us-gov", "global", "jp", "au", "ca"})

_STOP_REASONS: dict[str, StopReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
_J2_STOP_REASONS: dict[str, StopReason] = {"endoftext": "stop", "stop": "stop", "length": "length"}
_COHERE_STOP_REASONS: dict[str, StopReason] = {
    "COMPLETE": "stop",
    "MAX_TOKENS": "length",
    "ERROR_TOXIC": "content_filter",
    "ERROR": "error",
}
_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}

# Longest prefix wins; ids are base model ids (inference-profile geography stripped).
_CONTEXT_LENGTHS: tuple[tuple[str, int], ...] = (
    ("anthropic.claude-3", 200_000),
    ("anthropic.claude-sonnet-4", 200_000),
    ("anthropic.claude-opus-4", 200_000),
    ("anthropic.claude-haiku-4", 200_000),
    ("amazon.nova-micro", 128_000),
    ("amazon.nova-lite", 300_000),
    ("amazon.nova-pro", 300_000),
    ("amazon.nova-premier", 1_000_000),
    ("amazon.titan-text-express", 8_192),
    ("amazon.titan-text-lite", 4_096),
    ("amazon.titan-text-premier", 32_000),
    ("amazon.titan-embed-text-v2", 8_192),
    ("ai21.jamba", 256_000),
    ("ai21.j2-", 8_191),
    ("cohere.command-r", 128_000),
    ("cohere.command-text", 4_096),
    ("cohere.command-light-text", 4_096),
    ("cohere.embed-", 512),
    ("meta.llama3-1", 128_000),
    ("meta.llama3-2", 128_000),
    ("meta.llama3-3", 128_000),
    ("meta.llama3-", 8_192),
    ("mistral.mistral-large-2407", 128_000),
    ("mistral.mistral-7b", 32_000),
    ("mistral.mixtral-8x7b", 32_000),
)
_REASONING_PREFIXES = (
    "anthropic.claude-3-7",
    "anthropic.claude-sonnet-4",
    "anthropic.claude-opus-4",
    "deepseek.r1",
)

# Codes arrive PascalCase from HTTP errors and camelCase from eventstream exception messages.
_UPSTREAM_CODES = frozenset(
    {
        "InternalServerException",
        "ModelTimeoutException",
        "ModelErrorException",
        "ModelStreamErrorException",
    }
)
_UNAVAILABLE_CODES = frozenset({"ServiceUnavailableException", "ModelNotReadyException"})
_CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "IncompleteSignatureException",
        "MissingAuthenticationTokenException",
    }
)

# Signature errors echo the canonical request, whose headers include the session token, and a
# malformed Authorization header comes back whole, access key id included.
_SIGNING_DETAIL = re.compile(r"\s*The (Canonical String|String-to-Sign) .*", re.S)
_ACCESS_KEY_ID = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b")


# -- model ids and families -----------------------------------------------------------------


def base_model_id(model_id: str) -> str:
    """The foundation model behind an id: strips ARNs and inference-profile geography prefixes."""
    if model_id.startswith("arn:"):
        model_id = model_id.rsplit("/", 1)[-1]
    head, sep, rest = model_id.partition(".")
    if sep and head in _GEO_PREFIXES and "." in rest:
        return rest
    return model_id


def model_family(model_id: str) -> Family:
    base = base_model_id(model_id)
    if base.startswith("ai21.j2-"):
        return "jurassic"
    if base.startswith(("cohere.command-text-", "cohere.command-light-text-")):
        return "cohere_legacy"
    if base.startswith("amazon.titan-embed"):
        return "titan_embed"
    if base.startswith("cohere.embed-"):
        return "cohere_embed"
    if base.startswith(("amazon.titan-text-", "amazon.titan-tg1")):
        return "titan_text"
    return "converse"


def _context_length(base: str) -> int | None:
    matches = [(len(prefix), n) for prefix, n in _CONTEXT_LENGTHS if base.startswith(prefix)]
    return max(matches)[1] if matches else None


def _capabilities(summary: Mapping[str, Any]) -> ModelCapabilities:
    family = model_family(summary["modelId"])
    if "EMBEDDING" in summary.get("outputModalities", ()):
        return ModelCapabilities(chat=False, streaming=False, system_prompt=False, embeddings=True)
    return ModelCapabilities(
        chat=True,
        streaming=bool(summary.get("responseStreamingSupported")) and family != "jurassic",
        system_prompt=family not in ("titan_text", "jurassic", "cohere_legacy"),
        vision="IMAGE" in summary.get("inputModalities", ()),
        reasoning=summary["modelId"].startswith(_REASONING_PREFIXES),
    )


def _model_info(model_id: str, summary: Mapping[str, Any], name: str | None = None) -> ModelInfo:
    base = summary["modelId"]
    return ModelInfo(
        id=model_id,
        provider="bedrock",
        name=name or summary.get("modelName") or model_id,
        capabilities=_capabilities(summary),
        context_length=_context_length(base),
        family=base.split(".", 1)[0],
        lifecycle=summary.get("modelLifecycle", {}).get("status") or None,
    )


def _is_usable(summary: Mapping[str, Any]) -> bool:
    outputs = summary.get("outputModalities", ())
    lifecycle = summary.get("modelLifecycle", {}).get("status", "ACTIVE")
    return ("TEXT" in outputs or "EMBEDDING" in outputs) and lifecycle in ("ACTIVE", "LEGACY")


def _is_on_demand(summary: Mapping[str, Any]) -> bool:
    return "ON_DEMAND" in summary.get("inferenceTypesSupported", ())


def _profile_model(profile: Mapping[str, Any]) -> str:
    for model in profile.get("models", ()):
        arn = model.get("modelArn", "")
        if "foundation-model/" in arn:
            model_id: str = arn.rsplit("/", 1)[-1]
            return model_id
    return base_model_id(profile["inferenceProfileId"])


# -- errors ---------------------------------------------------------------------------------


def _error_message(exc: ClientError) -> str:
    """AWS's message for the error, without the credential material some messages echo."""
    message = str(exc.response.get("Error", {}).get("Message") or "")
    return _ACCESS_KEY_ID.sub(r"\1****", _SIGNING_DETAIL.sub("", message))


def _error_code(exc: ClientError) -> str:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code[:1].upper() + code[1:]


def _retry_after(exc: ClientError) -> float:
    headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    try:
        return max(0.0, float(headers.get("retry-after", "")))
    except ValueError:
        return DEFAULT_RETRY_AFTER


def _map_client_error(exc: ClientError, model: str | None) -> ProviderError:
    code = _error_code(exc)
    message = _error_message(exc) or code
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if code == "ValidationException":
        if "model identifier is invalid" in message:
            return ModelNotFound(f"Bedrock model {model!r} not found: {message}")
        return InvalidRequest(f"Bedrock rejected the request: {message}")
    if code == "ResourceNotFoundException":
        return ModelNotFound(f"Bedrock model {model!r} not found: {message}")
    if code in ("ThrottlingException", "ServiceQuotaExceededException"):
        return RateLimited(
            f"Bedrock is throttling requests: {message}", retry_after=_retry_after(exc)
        )
    if code == "AccessDeniedException":
        return AuthError(f"Bedrock denied access to {model!r}: {message} ({ACCESS_HINT})")
    if code in _CREDENTIAL_CODES:
        return AuthError(f"Bedrock rejected the AWS credentials: {message}")
    if code in _UNAVAILABLE_CODES:
        return ProviderUnavailable(f"Bedrock is unavailable: {message}")
    if code in _UPSTREAM_CODES or status >= 500:
        return UpstreamError(f"Bedrock error ({code}): {message}")
    return UpstreamError(f"Bedrock error ({code or status}): {message}")


def map_error(exc: BaseException, model: str | None = None) -> ProviderError:
    """The one place SDK and transport exceptions become `ProviderError`s."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, ClientError):
        return _map_client_error(exc, model)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError | ProfileNotFound):
        return AuthError(f"No usable AWS credentials for Bedrock: {exc}")
    if isinstance(exc, ReadTimeoutError | TimeoutError):
        return UpstreamError(f"Bedrock timed out: {exc or 'read timeout'}", code="upstream_timeout")
    if isinstance(exc, EndpointConnectionError):
        return ProviderUnavailable(f"Cannot reach Bedrock: {exc}")
    if isinstance(exc, ConnectionClosedError | aiohttp.ClientError):
        return UpstreamError(f"Bedrock connection failed: {exc or type(exc).__name__}")
    if isinstance(exc, BotoCoreError):
        return UpstreamError(f"Bedrock client error: {exc}")
    return UpstreamError(f"Unexpected Bedrock failure: {exc!r}")


_MAPPED = (BotoCoreError, ClientError, aiohttp.ClientError, TimeoutError)


@contextmanager
def _translated(model: str | None) -> Iterator[None]:
    try:
        yield
    except _MAPPED as exc:
        raise map_error(exc, model) from exc


# -- request building -----------------------------------------------------------------------


def _estimate_tokens(chars: int) -> int:
    return math.ceil(chars / 4)


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


def _converse_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """Converse messages; same-role neighbours merge, as Converse requires alternating roles."""
    out: list[dict[str, Any]] = []
    for message in messages:
        blocks = [_image_block(image) for image in message.images]
        if message.text:
            blocks.append({"text": message.text})
        if not blocks:
            continue
        if out and out[-1]["role"] == message.role:
            previous = out[-1]["content"]
            if "text" in previous[-1] and "text" in blocks[0]:
                previous[-1] = {"text": f"{previous[-1]['text']}\n\n{blocks[0]['text']}"}
                blocks = blocks[1:]
            previous.extend(blocks)
        else:
            out.append({"role": message.role, "content": blocks})
    return out


def _sampling(options: ChatOptions, *, max_tokens: str, top_p: str, stop: str) -> dict[str, Any]:
    """The options that are set, under one body format's key names (`temperature` in all)."""
    values = {
        max_tokens: options.max_tokens,
        "temperature": options.temperature,
        top_p: options.top_p,
        stop: list(options.stop) or None,
    }
    return {key: value for key, value in values.items() if value is not None}


def _inference_config(options: ChatOptions) -> dict[str, Any]:
    """Converse's `inferenceConfig`; AI21 Jurassic-2's native body uses the same names."""
    return _sampling(options, max_tokens="maxTokens", top_p="topP", stop="stopSequences")


def converse_params(request: ChatRequest) -> dict[str, Any]:
    """Keyword arguments for Converse/ConverseStream."""
    system = "\n\n".join(m.text for m in request.messages if m.role == "system" and m.text)
    turns = [m for m in request.messages if m.role != "system"]
    params: dict[str, Any] = {"modelId": request.model}
    if system and model_family(request.model) == "titan_text":
        turns = _fold_system(turns, system)
    elif system:
        params["system"] = [{"text": system}]
    params["messages"] = _converse_messages(turns)
    if config := _inference_config(request.options):
        params["inferenceConfig"] = config
    return params


def render_prompt(messages: Sequence[ChatMessage]) -> str:
    """One prompt for completion-only models: system text, then labelled turns, then a cue."""
    if any(m.images for m in messages):
        raise Unsupported("This Bedrock model does not accept images")
    parts = [m.text for m in messages if m.role == "system" and m.text]
    labels = {"user": "User", "assistant": "Assistant"}
    parts += [f"{labels[m.role]}: {m.text}" for m in messages if m.role != "system"]
    parts.append("Assistant:")
    return "\n\n".join(parts)


def jurassic_body(request: ChatRequest) -> dict[str, Any]:
    return {"prompt": render_prompt(request.messages), **_inference_config(request.options)}


def cohere_command_body(request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    options = _sampling(request.options, max_tokens="max_tokens", top_p="p", stop="stop_sequences")
    return {"prompt": render_prompt(request.messages), **options, "stream": stream}


# -- response parsing -----------------------------------------------------------------------


def _converse_usage(usage: Mapping[str, Any]) -> Usage:
    return Usage(
        input_tokens=usage.get("inputTokens", 0),
        output_tokens=usage.get("outputTokens", 0),
        cached_tokens=usage.get("cacheReadInputTokens", 0),
        cache_write_tokens=usage.get("cacheWriteInputTokens", 0),
    )


def _native_usage(
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
        input_tokens=_estimate_tokens(len(prompt)),
        output_tokens=_estimate_tokens(len(output)),
        exact=False,
    )


def _headers(response: Mapping[str, Any]) -> Mapping[str, str]:
    headers: Mapping[str, str] = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    return headers


def _invocation_metrics(metrics: Mapping[str, Any] | None) -> dict[str, int | float]:
    """Latency figures from `amazon-bedrock-invocationMetrics`; token counts go to `Usage`."""
    counts = ("inputTokenCount", "outputTokenCount")
    return {
        k: v for k, v in (metrics or {}).items() if isinstance(v, int | float) and k not in counts
    }


@dataclass(slots=True)
class _ConverseStreamState:
    """What a ConverseStream has told us so far."""

    text_chars: int = 0
    emitted: bool = False
    stop_reason: str | None = None
    usage: Usage | None = None
    metrics: dict[str, int | float] = field(default_factory=dict)

    def handle(self, event: Mapping[str, Any]) -> ChatEvent | None:
        if delta_event := event.get("contentBlockDelta"):
            delta = delta_event.get("delta", {})
            if text := delta.get("text"):
                self.text_chars += len(text)
                return TextDelta(text)
            if reasoning := delta.get("reasoningContent", {}).get("text"):
                return ReasoningDelta(reasoning)
        elif stop := event.get("messageStop"):
            self.stop_reason = stop.get("stopReason")
        elif metadata := event.get("metadata"):
            self.usage = _converse_usage(metadata.get("usage", {}))
            if (latency := metadata.get("metrics", {}).get("latencyMs")) is not None:
                self.metrics["latencyMs"] = latency
        return None


def _cohere_end(final: Mapping[str, Any], usage: Usage, error: str | None = None) -> ChatEnd:
    """How a Cohere Command reply ended: its last generation or stream chunk, or `error`."""
    reason = "error" if error else _COHERE_STOP_REASONS.get(final.get("finish_reason", ""), "stop")
    if reason == "error" and not error:
        error = "Cohere reported a generation error"
    metrics = _invocation_metrics(final.get("amazon-bedrock-invocationMetrics"))
    return ChatEnd(stop_reason=reason, usage=usage, error=error, metrics=metrics)


def _estimated_usage(request: ChatRequest, output_chars: int) -> Usage:
    prompt_chars = sum(len(m.text) for m in request.messages)
    return Usage(
        input_tokens=_estimate_tokens(prompt_chars),
        output_tokens=_estimate_tokens(output_chars),
        exact=False,
    )


def _stream_error(request: ChatRequest, state: _ConverseStreamState, message: str) -> ChatEnd:
    usage = state.usage or _estimated_usage(request, state.text_chars)
    return ChatEnd(stop_reason="error", usage=usage, error=message, metrics=state.metrics)


# -- the provider ---------------------------------------------------------------------------


class BedrockProvider(Provider):
    name: ClassVar[str] = "bedrock"

    def __init__(
        self,
        *,
        region: str,
        profile: str | None = None,
        endpoint_url: str | None = None,
        runtime_endpoint_url: str | None = None,
        allowed_models: Sequence[str] = (),
        max_attempts: int = 3,
        connect_timeout: float = 5.0,
        read_timeout: float = 300.0,
    ) -> None:
        self._region = region
        self._profile = profile
        self._endpoints: dict[Service, str | None] = {
            "bedrock": endpoint_url,
            "bedrock-runtime": runtime_endpoint_url or endpoint_url,
        }
        self._allowed = frozenset(allowed_models)
        self._config = AioConfig(
            # total_max_attempts counts the first try; botocore's "max_attempts" key counts retries.
            retries={"mode": "adaptive", "total_max_attempts": max_attempts},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=MAX_POOL_CONNECTIONS,
        )
        self._clients: dict[Service, Any] = {}
        self._stack: AsyncExitStack | None = None
        self._lock = asyncio.Lock()
        self._streaming: dict[str, bool] = {}
        self._health: tuple[float, ProviderHealth] | None = None
        self.attempts = AttemptCounter()  # retries and throttles, for the app's metrics

    # -- clients ----------------------------------------------------------------------------

    async def _client(self, service: Service) -> Any:
        client = self._clients.get(service)
        if client is not None:
            return client
        async with self._lock:
            if service not in self._clients:
                if self._stack is None:
                    self._stack = AsyncExitStack()
                with _translated(None):
                    session = aioboto3.Session(profile_name=self._profile, region_name=self._region)
                    self._clients[service] = await self._stack.enter_async_context(
                        session.client(
                            service, endpoint_url=self._endpoints[service], config=self._config
                        )
                    )
                    self.attempts.watch(self._clients[service])
            return self._clients[service]

    async def aclose(self) -> None:
        async with self._lock:
            stack, self._stack = self._stack, None
            self._clients.clear()
            if stack is not None:
                await stack.aclose()

    # -- catalog ----------------------------------------------------------------------------

    async def _foundation_models(self) -> list[dict[str, Any]]:
        client = await self._client("bedrock")
        with _translated(None):
            response = await client.list_foundation_models()
        summaries: list[dict[str, Any]] = response.get("modelSummaries", [])
        return summaries

    async def _inference_profiles(self) -> list[dict[str, Any]]:
        client = await self._client("bedrock")
        profiles: list[dict[str, Any]] = []
        params: dict[str, Any] = {}
        while True:
            with _translated(None):
                page = await client.list_inference_profiles(**params)
            profiles += page.get("inferenceProfileSummaries", [])
            if not page.get("nextToken"):
                return profiles
            params["nextToken"] = page["nextToken"]

    async def list_models(self) -> list[ModelInfo]:
        summaries = await self._foundation_models()
        profiles = await self._inference_profiles()
        by_id = {s["modelId"]: s for s in summaries}
        models = [
            _model_info(s["modelId"], s) for s in summaries if _is_usable(s) and _is_on_demand(s)
        ]
        for profile in profiles:
            summary = by_id.get(_profile_model(profile))
            if summary is None or not _is_usable(summary) or profile.get("status") != "ACTIVE":
                continue
            profile_id = profile["inferenceProfileId"]
            models.append(_model_info(profile_id, summary, profile.get("inferenceProfileName")))
        if self._allowed:
            models = [m for m in models if m.id in self._allowed]
        self._streaming = {m.id: m.capabilities.streaming for m in models}
        return models

    def _check_allowed(self, model: str) -> None:
        if self._allowed and model not in self._allowed:
            raise ModelNotFound(f"Bedrock model {model!r} is not enabled on this hub")

    # -- chat -------------------------------------------------------------------------------

    async def chat(self, request: ChatRequest) -> AsyncGenerator[ChatEvent, None]:
        self._check_allowed(request.model)
        family = model_family(request.model)
        if family in ("titan_embed", "cohere_embed"):
            raise Unsupported(f"{request.model} is an embedding model and cannot chat")
        if family == "jurassic":
            events = self._chat_jurassic(request)
        elif family == "cohere_legacy" and request.stream:
            events = self._chat_cohere_stream(request)
        elif family == "cohere_legacy":
            events = self._chat_cohere(request)
        elif request.stream and self._streaming.get(request.model, True):
            events = self._chat_converse_stream(request)
        else:
            events = self._chat_converse(request)
        async with aclosing(events):
            async for event in events:
                yield event

    async def _chat_converse(self, request: ChatRequest) -> AsyncGenerator[ChatEvent, None]:
        client = await self._client("bedrock-runtime")
        with _translated(request.model):
            response = await client.converse(**converse_params(request))
        content = response.get("output", {}).get("message", {}).get("content", [])
        reasoning = "".join(
            block["reasoningContent"].get("reasoningText", {}).get("text", "")
            for block in content
            if "reasoningContent" in block
        )
        text = "".join(block.get("text", "") for block in content)
        if reasoning:
            yield ReasoningDelta(reasoning)
        if text:
            yield TextDelta(text)
        metrics = {"latencyMs": response["metrics"]["latencyMs"]} if "metrics" in response else {}
        yield ChatEnd(
            stop_reason=_STOP_REASONS.get(response.get("stopReason", ""), "stop"),
            usage=_converse_usage(response.get("usage", {})),
            metrics=metrics,
        )

    async def _chat_converse_stream(self, request: ChatRequest) -> AsyncGenerator[ChatEvent, None]:
        client = await self._client("bedrock-runtime")
        params = converse_params(request)
        with _translated(request.model):
            response = await client.converse_stream(**params)
        stream = response["stream"]
        state = _ConverseStreamState()
        try:
            try:
                async for event in stream:
                    if (chat_event := state.handle(event)) is not None:
                        state.emitted = True
                        yield chat_event
            except _MAPPED as exc:
                error = map_error(exc, request.model)
                if not state.emitted:
                    raise error from exc
                yield _stream_error(request, state, error.message)
                return
        finally:
            stream.close()  # drops the connection, so Bedrock stops generating
        if state.stop_reason is None:
            yield _stream_error(request, state, "Bedrock stream ended before the model finished")
            return
        yield ChatEnd(
            stop_reason=_STOP_REASONS.get(state.stop_reason, "stop"),
            usage=state.usage or _estimated_usage(request, state.text_chars),
            metrics=state.metrics,
        )

    async def _invoke_json(
        self, model: str, body: Mapping[str, Any]
    ) -> tuple[dict[str, Any], Mapping[str, str]]:
        client = await self._client("bedrock-runtime")
        with _translated(model):
            response = await client.invoke_model(
                modelId=model,
                body=json.dumps(body),
                contentType="application/json",
                accept="application/json",
            )
            async with response["body"] as stream:
                payload = json.loads(await stream.read())
        return payload, _headers(response)

    async def _chat_jurassic(self, request: ChatRequest) -> AsyncGenerator[ChatEvent, None]:
        body = jurassic_body(request)
        payload, headers = await self._invoke_json(request.model, body)
        completion = payload["completions"][0]
        text = completion["data"]["text"]
        if text:
            yield TextDelta(text)
        usage = _native_usage(headers, None, body["prompt"], text)
        if not usage.exact and "tokens" in payload.get("prompt", {}):
            usage = Usage(
                input_tokens=len(payload["prompt"]["tokens"]),
                output_tokens=len(completion["data"].get("tokens", ())),
            )
        reason = completion.get("finishReason", {}).get("reason", "")
        yield ChatEnd(stop_reason=_J2_STOP_REASONS.get(reason, "stop"), usage=usage)

    async def _chat_cohere(self, request: ChatRequest) -> AsyncGenerator[ChatEvent, None]:
        body = cohere_command_body(request, stream=False)
        payload, headers = await self._invoke_json(request.model, body)
        generation = payload["generations"][0]
        text = generation.get("text", "")
        if text:
            yield TextDelta(text)
        yield _cohere_end(generation, _native_usage(headers, None, body["prompt"], text))

    async def _chat_cohere_stream(self, request: ChatRequest) -> AsyncGenerator[ChatEvent, None]:
        client = await self._client("bedrock-runtime")
        body = cohere_command_body(request, stream=True)
        with _translated(request.model):
            response = await client.invoke_model_with_response_stream(
                modelId=request.model,
                body=json.dumps(body),
                contentType="application/json",
                accept="application/json",
            )
        stream = response["body"]
        output: list[str] = []
        final: Mapping[str, Any] = {}
        error: str | None = "Bedrock stream ended before the model finished"
        try:
            async for event in stream:
                if "chunk" not in event:
                    continue  # an event type this botocore's service model does not know
                data = json.loads(event["chunk"]["bytes"])
                if text := data.get("text"):
                    output.append(text)
                    yield TextDelta(text)
                if data.get("is_finished"):
                    final, error = data, None
        except _MAPPED as exc:
            mapped = map_error(exc, request.model)
            if not output:
                raise mapped from exc
            error = mapped.message
        finally:
            stream.close()  # drops the connection, so Bedrock stops generating
        metrics = final.get("amazon-bedrock-invocationMetrics")
        usage = _native_usage({}, metrics, body["prompt"], "".join(output))
        yield _cohere_end(final, usage, error)

    # -- embeddings -------------------------------------------------------------------------

    async def embed(self, request: EmbedRequest) -> EmbedResult:
        self._check_allowed(request.model)
        family = model_family(request.model)
        if family == "titan_embed":
            return await self._embed_titan(request)
        if family == "cohere_embed":
            return await self._embed_cohere(request)
        raise Unsupported(f"{request.model} is not an embedding model")

    async def _embed_titan(self, request: EmbedRequest) -> EmbedResult:
        v2 = base_model_id(request.model).startswith("amazon.titan-embed-text-v2")
        if request.dimensions is not None and not v2:
            raise Unsupported(f"{request.model} has a fixed embedding size")
        vectors: list[list[float]] = []
        tokens = 0
        for text in request.inputs:
            body: dict[str, Any] = {"inputText": text}
            if v2:
                body["normalize"] = True
                if request.dimensions is not None:
                    body["dimensions"] = request.dimensions
            payload, _ = await self._invoke_json(request.model, body)
            vectors.append(payload["embedding"])
            tokens += int(payload.get("inputTextTokenCount", 0))
        return EmbedResult(vectors=vectors, usage=Usage(input_tokens=tokens))

    async def _embed_cohere(self, request: EmbedRequest) -> EmbedResult:
        if request.dimensions is not None:
            raise Unsupported(f"{request.model} has a fixed embedding size")
        vectors: list[list[float]] = []
        tokens = 0
        exact = True
        inputs = list(request.inputs)
        for start in range(0, len(inputs), COHERE_EMBED_BATCH):
            batch = inputs[start : start + COHERE_EMBED_BATCH]
            body = {"texts": batch, "input_type": "search_document"}
            payload, headers = await self._invoke_json(request.model, body)
            vectors += payload["embeddings"]
            usage = _native_usage(headers, None, "".join(batch), "")
            tokens += usage.input_tokens
            exact = exact and usage.exact
        return EmbedResult(vectors=vectors, usage=Usage(input_tokens=tokens, exact=exact))

    # -- health -----------------------------------------------------------------------------

    async def health(self) -> ProviderHealth:
        now = time.monotonic()
        if self._health is not None and now - self._health[0] < HEALTH_TTL:
            return self._health[1]
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT):
                await self._foundation_models()
        except TimeoutError:
            result = ProviderHealth(ok=False, detail="Bedrock did not answer in time")
        except ProviderError as exc:
            result = ProviderHealth(ok=False, detail=exc.message)
        else:
            result = ProviderHealth(ok=True, latency_ms=(time.monotonic() - now) * 1000)
        self._health = (time.monotonic(), result)
        return result
