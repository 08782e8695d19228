"""Ollama over its native HTTP API (`/api/*`, see ollama/ollama docs/api.md).

One pooled `aiohttp.ClientSession` per provider, created lazily on first use. Every aiohttp
exception is translated in `_translate`; HTTP error statuses in `_status_error`.

Timeouts: failing to *connect* within `connect_timeout` means Ollama is unreachable
(`ProviderUnavailable`, like connection refused). Ollama accepting the connection but sending
nothing for `read_timeout` seconds is an upstream failure (`UpstreamError`, code
`upstream_timeout`): the server is there but stuck, so a retry elsewhere is not obviously better.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from .base import (
    ChatEnd,
    ChatEvent,
    ChatRequest,
    EmbedRequest,
    EmbedResult,
    ModelCapabilities,
    ModelInfo,
    Provider,
    ProviderHealth,
    PullProgress,
    ReasoningDelta,
    StopReason,
    TextDelta,
    Usage,
)
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
from .ollama_chat import ForcedToolCall, ToolCalls, chat_payload

_HEALTH_TIMEOUT = aiohttp.ClientTimeout(total=3.0)
_SHOW_CONCURRENCY = 8
# After the `done` line, how long to wait for the end of the chunked body so the connection can
# go back to the pool instead of being closed.
_DRAIN_TIMEOUT = 1.0
_DURATION_KEYS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")
_STOP_REASONS: Mapping[str, StopReason] = {"stop": "stop", "length": "length"}
_CLIENT_ERRORS = (aiohttp.ClientError, TimeoutError)


@dataclass(slots=True, frozen=True)
class LoadedModel:
    """A model Ollama currently holds in memory (`/api/ps`)."""

    name: str
    size_bytes: int
    size_vram: int
    expires_at: str | None = None


class OllamaProvider(Provider):
    name: ClassVar[str] = "ollama"
    supports_pull: ClassVar[bool] = True

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 300.0,
        keep_alive: str | None = None,
        address: str | None = None,
    ) -> None:
        """`address`: connect to this IP address whatever the URL's host name resolves to (one
        of several servers behind one DNS name); the URL's name still goes in `Host` and TLS."""
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"Ollama base URL must be http(s)://…, got {base_url!r}")
        self._base_url = base_url.rstrip("/")
        # For messages, which reach API clients: without any `user:password@` in the URL.
        self._public_url = str(URL(self._base_url).with_user(None))
        self._read_timeout = read_timeout
        # `connect` also bounds DNS resolution, which `sock_connect` does not cover.
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=connect_timeout,
            sock_connect=connect_timeout,
            sock_read=read_timeout,
        )
        self._keep_alive = keep_alive
        self._address = address
        self._session: aiohttp.ClientSession | None = None

    # -- plumbing -------------------------------------------------------------------------

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # No connection cap: Ollama queues requests itself (OLLAMA_MAX_QUEUE) and answers
            # 503 when full, which is clearer than waiting silently for a pool slot here.
            resolver = _PinnedResolver(self._address) if self._address else None
            connector = aiohttp.TCPConnector(limit=0, resolver=resolver)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    def _translate(self, exc: BaseException) -> ProviderError:
        """The one place aiohttp/timeout exceptions become `ProviderError`s."""
        if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
            return ProviderUnavailable(f"Ollama is unreachable at {self._public_url}: {exc}")
        if isinstance(exc, TimeoutError):
            reason = str(exc) or f"nothing received for {self._read_timeout:g}s"
            return UpstreamError(f"Ollama timed out: {reason}", code="upstream_timeout")
        if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
            return UpstreamError(f"Ollama closed the connection mid-response: {exc}")
        return UpstreamError(f"Ollama request failed: {exc!r}")

    @contextlib.contextmanager
    def _mapped_errors(self) -> Iterator[None]:
        try:
            yield
        except _CLIENT_ERRORS as exc:
            raise self._translate(exc) from exc

    async def _open(
        self,
        method: str,
        path: str,
        payload: Mapping[str, Any] | None = None,
        *,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> aiohttp.ClientResponse:
        """Send a request; return the response if 2xx, else raise the mapped error."""
        kwargs: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        with self._mapped_errors():
            resp = await self._client().request(
                method, self._base_url + path, json=payload, **kwargs
            )
            if resp.status < 400:
                return resp
            try:
                body = await resp.read()
            finally:
                resp.release()
        raise _status_error(resp.status, body, resp.headers)

    async def _call(
        self,
        method: str,
        path: str,
        payload: Mapping[str, Any] | None = None,
        *,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> Any:
        """A non-streaming call: the decoded JSON body."""
        resp = await self._open(method, path, payload, timeout=timeout)
        try:
            with self._mapped_errors():
                body = await resp.read()
        finally:
            resp.release()
        return _loads(body) if body.strip() else None

    # -- chat -----------------------------------------------------------------------------

    async def chat(self, request: ChatRequest) -> AsyncGenerator[ChatEvent, None]:
        payload = chat_payload(request, keep_alive=self._keep_alive)
        resp = await self._open("POST", "/api/chat", payload)
        reader = _JSONLines(resp, self._translate, streaming=request.stream)
        forced = ForcedToolCall.for_request(request)
        tags: _ThinkTags | None = None if forced or request.response_format else _ThinkTags()
        calls = ToolCalls(request)
        emitted = False
        try:
            # The hot path, kept inline: per chunk, one dict walk, one event, one yield.
            while batch := await reader.next_batch():
                for obj in batch:
                    message = obj.get("message")
                    if message:
                        thinking = message.get("thinking")
                        if thinking:
                            emitted = True
                            yield ReasoningDelta(thinking)
                        content = message.get("content")
                        if content:
                            if forced is not None:
                                forced.feed(content)
                            elif tags is None:
                                emitted = True
                                yield TextDelta(content)
                            else:
                                for event in tags.feed(content):
                                    emitted = True
                                    yield event
                                if tags.finished:
                                    tags = None
                        if message.get("tool_calls"):
                            for event in calls.events(message["tool_calls"]):
                                emitted = True
                                yield event
                    if obj.get("done"):
                        for event in tags.flush() if tags else ():
                            yield event
                        if forced is not None and not calls.count:
                            for event in forced.events():
                                calls.count += 1
                                yield event
                        yield _chat_end(obj, tool_calls=calls.count > 0)
                        await reader.drain()
                        return
                    if "error" in obj:
                        raise _stream_error(obj["error"])
            raise UpstreamError("Ollama ended the chat stream without a final `done` message")
        except ProviderError as exc:
            if not emitted:
                raise
            for event in tags.flush() if tags else ():
                yield event
            yield ChatEnd(stop_reason="error", error=exc.message)
        finally:
            reader.close()

    # -- models ---------------------------------------------------------------------------

    async def list_models(self) -> list[ModelInfo]:
        tags = await self._call("GET", "/api/tags")
        entries = [m for m in (tags or {}).get("models") or () if m.get("name")]
        limit = asyncio.Semaphore(_SHOW_CONCURRENCY)
        shows = await asyncio.gather(*(self._show(m["name"], limit) for m in entries))
        return [_model_info(entry, show) for entry, show in zip(entries, shows, strict=True)]

    async def _show(self, model: str, limit: asyncio.Semaphore) -> dict[str, Any] | None:
        """`/api/show` for one model, or None: capabilities then fall back to guesses."""
        async with limit:
            try:
                show = await self._call("POST", "/api/show", {"model": model})
            except ProviderError:
                return None
        return show if isinstance(show, dict) else None

    async def loaded_models(self) -> list[LoadedModel]:
        body = await self._call("GET", "/api/ps")
        return [
            LoadedModel(
                name=m.get("name") or m.get("model", ""),
                size_bytes=int(m.get("size") or 0),
                size_vram=int(m.get("size_vram") or 0),
                expires_at=m.get("expires_at") or None,
            )
            for m in (body or {}).get("models") or ()
        ]

    async def pull_model(self, name: str) -> AsyncIterator[PullProgress]:
        resp = await self._open("POST", "/api/pull", {"model": name, "stream": True})
        reader = _JSONLines(resp, self._translate, streaming=True)
        try:
            while batch := await reader.next_batch():
                for obj in batch:
                    if "error" in obj:
                        raise _stream_error(obj["error"])
                    yield PullProgress(
                        status=obj.get("status", ""),
                        digest=obj.get("digest") or None,
                        total=obj.get("total"),
                        completed=obj.get("completed"),
                    )
        finally:
            reader.close()

    async def delete_model(self, name: str) -> None:
        await self._call("DELETE", "/api/delete", {"model": name})

    # -- embeddings, health, lifecycle ----------------------------------------------------

    async def embed(self, request: EmbedRequest) -> EmbedResult:
        payload: dict[str, Any] = {"model": request.model, "input": list(request.inputs)}
        if request.dimensions is not None:
            payload["dimensions"] = request.dimensions
        if self._keep_alive is not None:
            payload["keep_alive"] = self._keep_alive
        body = await self._call("POST", "/api/embed", payload)
        vectors = (body or {}).get("embeddings")
        if not isinstance(vectors, list):
            raise UpstreamError("Ollama's embed response has no `embeddings` list")
        count = body.get("prompt_eval_count")
        usage = Usage(input_tokens=count, exact=True) if count is not None else Usage(exact=False)
        return EmbedResult(vectors=vectors, usage=usage)

    async def health(self) -> ProviderHealth:
        """`GET /api/version`: the cheapest call Ollama answers (no model, no disk)."""
        started = time.perf_counter()
        try:
            body = await self._call("GET", "/api/version", timeout=_HEALTH_TIMEOUT)
        except ProviderError as exc:
            return ProviderHealth(ok=False, detail=exc.message)
        latency_ms = (time.perf_counter() - started) * 1000
        version = (body or {}).get("version") if isinstance(body, dict) else None
        return ProviderHealth(ok=True, latency_ms=latency_ms, detail=f"Ollama {version or '?'}")

    async def aclose(self) -> None:
        # Detach first: a call made while the close is awaited then opens a session of its own,
        # which the next aclose() closes, instead of one nobody holds any more.
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class _PinnedResolver(AbstractResolver):
    """Resolves every name to one address: the server of several that this provider talks to."""

    def __init__(self, address: str) -> None:
        self._address = address
        self._family = socket.AF_INET6 if ":" in address else socket.AF_INET

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=self._address,
                port=port,
                family=self._family,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        return None


class _JSONLines:
    """Decoded NDJSON lines from a response body, one network read at a time.

    Works on bytes, so a line (or a multi-byte character) split across reads is reassembled
    before decoding, and line length is unbounded (unlike `StreamReader.readline`).
    """

    __slots__ = ("_read", "_resp", "_streaming", "_tail", "_translate")

    def __init__(
        self,
        resp: aiohttp.ClientResponse,
        translate: Callable[[BaseException], ProviderError],
        *,
        streaming: bool,
    ) -> None:
        self._resp = resp
        self._translate = translate
        self._read = resp.content.readany if streaming else resp.content.read
        self._streaming = streaming
        self._tail = b""

    async def next_batch(self) -> list[Any]:
        """The decoded objects of the next complete lines; `[]` once the body is exhausted."""
        lines = await self._next_lines()
        try:
            # str input skips json.loads' encoding sniffing of bytes: ~1 µs less per line.
            return [json.loads(line.decode()) for line in lines]
        except ValueError as exc:
            raise UpstreamError(f"Ollama sent invalid JSON: {exc}") from exc

    async def _next_lines(self) -> list[bytes]:
        while True:
            try:
                data = await self._read()
            except _CLIENT_ERRORS as exc:
                raise self._translate(exc) from exc
            if not data:
                tail, self._tail = self._tail, b""
                return [tail] if tail.strip() else []
            if not self._streaming:
                # A non-streamed reply is one JSON document; it need not be a single line.
                return [data]
            if self._tail:
                data = self._tail + data
            lines = data.split(b"\n")
            self._tail = lines.pop()
            if data[:1] == b"\n" or b"\n\n" in data:
                lines = [line for line in lines if line]
            if lines:
                return lines

    async def drain(self) -> None:
        """Wait briefly for the end of the body so the connection can be reused."""
        with contextlib.suppress(*_CLIENT_ERRORS):
            async with asyncio.timeout(_DRAIN_TIMEOUT):
                await self._resp.content.wait_eof()

    def close(self) -> None:
        # close() drops the connection, so Ollama notices and stops generating; only a fully
        # read body may go back to the pool.
        if self._resp.content.at_eof():
            self._resp.release()
        else:
            self._resp.close()


class _ThinkTags:
    """Splits `<think>…</think>` reasoning off the start of a content stream.

    Only a block that opens the reply (after optional whitespace) counts: a later literal
    "<think>" in an answer is ordinary text. Tags may arrive split across chunks, so a possible
    tag prefix at the end of a chunk is held back until the next one decides it.
    """

    __slots__ = ("_mode", "_pending")
    _OPEN = "<think>"
    _CLOSE = "</think>"
    _START, _THINK, _AFTER, _PLAIN = range(4)

    def __init__(self) -> None:
        self._mode = self._START
        self._pending = ""

    @property
    def finished(self) -> bool:
        """True once the rest of the stream is plain text and needs no more inspection."""
        return self._mode == self._PLAIN

    def feed(self, text: str) -> list[ChatEvent]:
        text, self._pending = self._pending + text, ""
        if self._mode == self._START:
            return self._feed_start(text)
        if self._mode == self._THINK:
            return self._feed_think(text)
        return self._feed_after(text)

    def flush(self) -> list[ChatEvent]:
        """Events for text held back at the end of the stream."""
        pending, self._pending = self._pending, ""
        if not pending:
            return []
        if self._mode == self._THINK:
            return [ReasoningDelta(pending)]
        return [] if self._mode == self._AFTER else [TextDelta(pending)]

    def _feed_start(self, text: str) -> list[ChatEvent]:
        stripped = text.lstrip()
        if stripped.startswith(self._OPEN):
            self._mode = self._THINK
            return self._feed_think(stripped[len(self._OPEN) :])
        if not stripped or self._OPEN.startswith(stripped):
            self._pending = text
            return []
        self._mode = self._PLAIN
        return [TextDelta(text)]

    def _feed_think(self, text: str) -> list[ChatEvent]:
        end = text.find(self._CLOSE)
        if end >= 0:
            self._mode = self._AFTER
            events: list[ChatEvent] = [ReasoningDelta(text[:end])] if end else []
            return events + self._feed_after(text[end + len(self._CLOSE) :])
        keep = _partial_suffix(text, self._CLOSE)
        if keep:
            text, self._pending = text[:-keep], text[-keep:]
        return [ReasoningDelta(text)] if text else []

    def _feed_after(self, text: str) -> list[ChatEvent]:
        # Models put a blank line between the closing tag and the answer; drop it.
        text = text.lstrip()
        if not text:
            return []
        self._mode = self._PLAIN
        return [TextDelta(text)]


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of `text` that is a proper prefix of `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0


# -- wire format helpers ------------------------------------------------------------------


def _loads(data: bytes) -> Any:
    try:
        return json.loads(data.decode())
    except ValueError as exc:
        raise UpstreamError(f"Ollama sent invalid JSON: {data[:200]!r}") from exc


def _chat_end(done: Mapping[str, Any], *, tool_calls: bool = False) -> ChatEnd:
    # Ollama omits zero counts (`omitempty`), so a missing count is an exact 0.
    usage = Usage(
        input_tokens=int(done.get("prompt_eval_count") or 0),
        output_tokens=int(done.get("eval_count") or 0),
        exact=True,
    )
    metrics = {key: done[key] for key in _DURATION_KEYS if key in done}
    # "load"/"unload" and unknown reasons still mean the model finished normally.
    stop_reason = _STOP_REASONS.get(done.get("done_reason") or "stop", "stop")
    if tool_calls and stop_reason == "stop":
        stop_reason = "tool_calls"
    return ChatEnd(stop_reason=stop_reason, usage=usage, metrics=metrics)


def _error_message(body: bytes) -> str:
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        message: str = parsed["error"]
        return message
    return body.decode("utf-8", "replace").strip()[:500] or "(empty body)"


def _is_model_not_found(message: str) -> bool:
    lowered = message.lower()
    return ("model" in lowered and "not found" in lowered) or "file does not exist" in lowered


def _status_error(status: int, body: bytes, headers: Mapping[str, str]) -> ProviderError:
    message = _error_message(body)
    detail = f"Ollama returned {status}: {message}"
    if status == 404 and _is_model_not_found(message):
        return ModelNotFound(message)
    if status == 400:
        return Unsupported(message) if "does not support" in message else InvalidRequest(message)
    if status in (401, 403):
        return AuthError(detail)
    if status == 429:
        return RateLimited(detail, retry_after=_retry_after(headers))
    if status == 503:
        return ProviderUnavailable(detail)
    return UpstreamError(detail)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        return float(headers.get("Retry-After", ""))
    except ValueError:
        return None


def _stream_error(message: Any) -> ProviderError:
    """An `{"error": …}` line inside a 200 stream."""
    text = str(message)
    return ModelNotFound(text) if _is_model_not_found(text) else UpstreamError(text)


def _model_info(entry: Mapping[str, Any], show: Mapping[str, Any] | None) -> ModelInfo:
    details = entry.get("details") or {}
    name = entry["name"]
    return ModelInfo(
        id=name,
        provider=OllamaProvider.name,
        name=name,
        capabilities=_capabilities(show, details),
        context_length=_context_length(show),
        size_bytes=entry.get("size"),
        family=details.get("family") or None,
        parameter_size=details.get("parameter_size") or None,
        quantization=details.get("quantization_level") or None,
    )


def _capabilities(show: Mapping[str, Any] | None, details: Mapping[str, Any]) -> ModelCapabilities:
    declared = (show or {}).get("capabilities")
    if isinstance(declared, list):
        chat = "completion" in declared
        return ModelCapabilities(
            chat=chat,
            streaming=chat,
            system_prompt=chat,
            vision="vision" in declared,
            embeddings="embedding" in declared,
            reasoning="thinking" in declared,
            tools="tools" in declared,
        )
    # Older Ollama (or a failed /api/show): guess from the architecture families.
    show_details = (show or {}).get("details") or {}
    families = {
        f.lower()
        for f in (show_details.get("families") or details.get("families") or ())
        if isinstance(f, str)
    }
    family = str(show_details.get("family") or details.get("family") or "").lower()
    families.add(family)
    embeddings = any(f.endswith("bert") for f in families if f)
    return ModelCapabilities(
        chat=not embeddings,
        streaming=not embeddings,
        system_prompt=not embeddings,
        vision="clip" in families or "mllama" in families,
        embeddings=embeddings,
    )


def _context_length(show: Mapping[str, Any] | None) -> int | None:
    info = (show or {}).get("model_info") or {}
    arch = info.get("general.architecture")
    value = info.get(f"{arch}.context_length") if arch else None
    if value is None:
        value = next((v for k, v in info.items() if k.endswith(".context_length")), None)
    return int(value) if isinstance(value, int | float) else None
