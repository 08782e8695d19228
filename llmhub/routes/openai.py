"""The OpenAI-compatible API: `/v1/models`, `/v1/chat/completions`, `/v1/embeddings`.

Shapes follow OpenAI's API reference so the official SDKs work unmodified. /v1 calls are not
stored as chats, only as usage rows. `Server-Timing: gateway;dur=…` reports our own overhead
(everything before the provider is called, plus, for whole responses, everything after).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Literal

import anyio
from pydantic import Field, field_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from providers.base import (
    ChatEnd,
    ChatMessage,
    ChatOptions,
    ChatRequest,
    EmbedRequest,
    Image,
    ReasoningDelta,
    TextDelta,
    Usage,
)
from providers.errors import LLMHubError

from .. import model_calls
from ..errors import BadRequest, error_body
from ._endpoint import Body, endpoint, principal, read_body
from .models import visible_models

# How long a stream's clean-up (closing the upstream, the usage row) may outlive its client.
CLEANUP_SECONDS = 10.0

FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "cancelled": "stop",
    "error": "stop",
}


class TextPart(Body):
    type: Literal["text"]
    text: str


class ImageUrl(Body):
    url: str
    detail: str | None = None


class ImagePart(Body):
    type: Literal["image_url"]
    image_url: ImageUrl


class Message(Body):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart | ImagePart] | None = None
    name: str | None = None


class StreamOptions(Body):
    include_usage: bool = False


class ChatCompletionBody(Body):
    model: str = Field(min_length=1, max_length=200)
    messages: list[Message] = Field(min_length=1, max_length=10_000)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(1, ge=1, le=1)
    # Accepted for compatibility; they do not change what we send upstream.
    user: str | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    logprobs: Literal[False] | None = None

    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value


class EmbeddingsBody(Body):
    model: str = Field(min_length=1, max_length=200)
    input: str | list[str] = Field(min_length=1)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None


def _image(url: str) -> Image:
    header, sep, data = url.partition(",")
    if not (sep and header.startswith("data:") and header.endswith(";base64")):
        raise BadRequest(
            "image_url: only data: URLs with base64 content are supported", code="invalid_image"
        )
    try:
        return Image(base64.b64decode(data, validate=True), header[5:].removesuffix(";base64"))
    except binascii.Error:
        raise BadRequest("image_url: the base64 data is malformed", code="invalid_image") from None


def _to_chat_messages(messages: list[Message]) -> list[ChatMessage]:
    converted = []
    for message in messages:
        role = "system" if message.role == "developer" else message.role
        if isinstance(message.content, list):
            text = "".join(p.text for p in message.content if isinstance(p, TextPart))
            images = tuple(
                _image(p.image_url.url) for p in message.content if isinstance(p, ImagePart)
            )
        else:
            text, images = message.content or "", ()
        converted.append(ChatMessage(role, text, images))
    return converted


def _options(body: ChatCompletionBody) -> ChatOptions:
    stop = [body.stop] if isinstance(body.stop, str) else body.stop or []
    return ChatOptions(
        temperature=body.temperature,
        top_p=body.top_p,
        max_tokens=body.max_completion_tokens or body.max_tokens,
        stop=tuple(stop),
        seed=body.seed,
    )


def _usage_json(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


def _server_timing(gateway_ms: float, upstream_ms: float | None = None) -> str:
    timing = f'gateway;dur={gateway_ms:.2f};desc="llmhub overhead"'
    if upstream_ms is not None:
        timing += f", upstream;dur={upstream_ms:.2f}"
    return timing


@endpoint("user")
async def list_models(request: Request) -> Response:
    me = principal(request)
    models = [
        m
        for m in await visible_models(request)
        if model_calls.model_allowed(me, m["id"], m["provider"])
    ]
    data = [
        {"id": m["id"], "object": "model", "created": 0, "owned_by": m["provider"]} for m in models
    ]
    return JSONResponse({"object": "list", "data": data})


@endpoint("user")
async def chat_completions(request: Request) -> Response:
    started = time.perf_counter()
    body = await read_body(request, ChatCompletionBody)
    chat_request = ChatRequest(
        model="", messages=_to_chat_messages(body.messages), options=_options(body)
    )
    call = await model_calls.admit(request.app.state, principal(request), body.model)
    chat_request = ChatRequest(call.model, chat_request.messages, chat_request.options, body.stream)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        events = call.provider.chat(chat_request)
        # Pull the first event now: errors before any output become a plain JSON error response.
        try:
            first = await anext(events)
        except LLMHubError as exc:
            await events.aclose()
            await _record_failure(request, call, started, exc)
            raise
        gateway_ms = (time.perf_counter() - started) * 1000
        stream = _stream_chunks(
            request, call, events, first, completion_id, created, body.model, include_usage, started
        )
        return _EventStream(
            stream,
            media_type="text/event-stream",
            headers={
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
                "Server-Timing": _server_timing(gateway_ms),
            },
        )
    return await _whole_completion(
        request, call, chat_request, completion_id, created, body.model, started
    )


async def _whole_completion(
    request: Request,
    call: model_calls.ModelCall,
    chat_request: ChatRequest,
    completion_id: str,
    created: int,
    model: str,
    started: float,
) -> Response:
    text: list[str] = []
    reasoning: list[str] = []
    end = ChatEnd("error", error="no answer")
    upstream_started = time.perf_counter()
    ttft: float | None = None
    try:
        async for event in call.provider.chat(chat_request):
            if isinstance(event, TextDelta):
                ttft = ttft or time.perf_counter()
                text.append(event.text)
            elif isinstance(event, ReasoningDelta):
                ttft = ttft or time.perf_counter()
                reasoning.append(event.text)
            elif isinstance(event, ChatEnd):
                end = event
    except LLMHubError as exc:
        await _record_failure(request, call, upstream_started, exc)
        raise
    upstream_ms = (time.perf_counter() - upstream_started) * 1000
    failed = end.stop_reason == "error"
    await model_calls.record(
        request.app.state,
        call,
        end.usage,
        status="error" if failed else "complete",
        ttft_ms=round((ttft - upstream_started) * 1000) if ttft else None,
        duration_ms=round(upstream_ms),
        error=(end.error or "the model failed") if failed else None,
    )
    if end.stop_reason == "error" and not text:
        body = error_body(end.error or "the model failed", "upstream_error", "upstream_error")
        return JSONResponse(body, 502)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text)}
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    payload = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": FINISH_REASONS[end.stop_reason],
                "logprobs": None,
            }
        ],
        "usage": _usage_json(end.usage),
        "system_fingerprint": None,
    }
    gateway_ms = (time.perf_counter() - started) * 1000 - upstream_ms
    return JSONResponse(payload, headers={"Server-Timing": _server_timing(gateway_ms, upstream_ms)})


async def _record_failure(
    request: Request, call: model_calls.ModelCall, started: float, exc: LLMHubError
) -> None:
    """A call the provider refused before any output still counts as a call."""
    await model_calls.record(
        request.app.state,
        call,
        Usage(),
        status="error",
        ttft_ms=None,
        duration_ms=round((time.perf_counter() - started) * 1000),
        error=exc,
    )


class _EventStream(StreamingResponse):
    """Closes its generator however the response ends. Starlette leaves a generator abandoned by
    a client that went away to the garbage collector; closing it here stops the upstream and
    writes the usage row at once."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.body_iterator.aclose()  # type: ignore[attr-defined]


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


async def _stream_chunks(
    request: Request,
    call: model_calls.ModelCall,
    events: AsyncGenerator[Any, None],
    first: Any,
    completion_id: str,
    created: int,
    model: str,
    include_usage: bool,
    started: float,
) -> AsyncIterator[bytes]:
    base = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": None,
    }
    if include_usage:
        base["usage"] = None

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        return _sse({**base, "choices": [choice]})

    end = ChatEnd("cancelled", usage=Usage(exact=False))
    ttft_ms: int | None = None
    output_chars = 0
    try:
        yield chunk({"role": "assistant", "content": ""})
        event = first
        while True:
            if isinstance(event, TextDelta):
                ttft_ms = ttft_ms or round((time.perf_counter() - started) * 1000)
                output_chars += len(event.text)
                yield chunk({"content": event.text})
            elif isinstance(event, ReasoningDelta):
                ttft_ms = ttft_ms or round((time.perf_counter() - started) * 1000)
                yield chunk({"reasoning_content": event.text})
            elif isinstance(event, ChatEnd):
                end = event
                break
            event = await anext(events)
        if end.stop_reason == "error":
            # The SDKs raise on a chunk that carries an `error` object.
            yield _sse(
                error_body(end.error or "the model failed", "upstream_error", "upstream_error")
            )
        else:
            yield chunk({}, FINISH_REASONS[end.stop_reason])
            if include_usage:
                yield _sse({**base, "choices": [], "usage": _usage_json(end.usage)})
        yield b"data: [DONE]\n\n"
    finally:
        # A client that went away cancels this generator, and Starlette's cancel scope cancels
        # every await after that too: shield the clean-up, or the usage row is never written.
        with anyio.move_on_after(CLEANUP_SECONDS, shield=True):
            await events.aclose()  # a client that went away stops the upstream too
            usage = end.usage
            if end.stop_reason == "cancelled":
                usage = Usage(
                    output_tokens=max(1, output_chars // 4) if output_chars else 0, exact=False
                )
            await model_calls.record(
                request.app.state,
                call,
                usage,
                status={"error": "error", "cancelled": "stopped"}.get(end.stop_reason, "complete"),
                ttft_ms=ttft_ms,
                duration_ms=round((time.perf_counter() - started) * 1000),
                error=(end.error or "the model failed") if end.stop_reason == "error" else None,
            )


@endpoint("user")
async def embeddings(request: Request) -> Response:
    started = time.perf_counter()
    body = await read_body(request, EmbeddingsBody)
    inputs = [body.input] if isinstance(body.input, str) else body.input
    call = await model_calls.admit(request.app.state, principal(request), body.model)
    upstream_started = time.perf_counter()
    try:
        result = await call.provider.embed(EmbedRequest(call.model, inputs, body.dimensions))
    except LLMHubError as exc:
        await _record_failure(request, call, upstream_started, exc)
        raise
    upstream_ms = (time.perf_counter() - upstream_started) * 1000
    await model_calls.record(
        request.app.state,
        call,
        result.usage,
        status="complete",
        ttft_ms=None,
        duration_ms=round(upstream_ms),
    )
    data = [
        {"object": "embedding", "index": i, "embedding": _encode_vector(v, body.encoding_format)}
        for i, v in enumerate(result.vectors)
    ]
    payload = {
        "object": "list",
        "data": data,
        "model": body.model,
        "usage": {
            "prompt_tokens": result.usage.input_tokens,
            "total_tokens": result.usage.input_tokens,
        },
    }
    gateway_ms = (time.perf_counter() - started) * 1000 - upstream_ms
    return JSONResponse(payload, headers={"Server-Timing": _server_timing(gateway_ms, upstream_ms)})


def _encode_vector(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "float":
        return vector
    import array

    return base64.b64encode(array.array("f", vector).tobytes()).decode()


routes = [
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/embeddings", embeddings, methods=["POST"]),
]
