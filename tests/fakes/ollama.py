"""A fake Ollama on a loopback aiohttp server, speaking the wire formats of its docs/api.md.

Endpoints: `POST /api/chat` (NDJSON stream or one JSON object), `GET /api/tags`,
`POST /api/show`, `GET /api/ps`, `POST /api/pull` (NDJSON progress), `DELETE /api/delete`,
`POST /api/embed`, `GET /api/version`. Errors are `{"error": "..."}` bodies with Ollama's status
codes and messages; a failure after a stream started is an `{"error": ...}` line in the stream.
Like Go's encoding/json, `<`, `>` and `&` in strings are sent as `\\u003c`-style escapes.

    async with FakeOllama([FakeModel("llama3.2:1b", reply="Hi there", chunks=2)]) as fake:
        provider = OllamaProvider(fake.url)

Replies are scripted per model (`FakeModel.reply`/`chunks`/`thinking`/`tool_calls`, or
`fake.script(...)`). As in Ollama, `tools` reach only models with the `tools` capability (else
400 "… does not support tools"), and `think` only thinking models; a model offered tools answers
with its scripted `tool_calls` (for tools it was offered) unless the last message is a tool
result; `format` ("json" or a JSON Schema) makes the reply a JSON document (one matching the
schema; `ignore_format` imitates a server too old for that). Tool calls carry an `id` and
`function.index` as Ollama 0.12.10+ sends them (`tool_call_ids = False`: older servers, neither).
Fault knobs are plain attributes (`chunk_delay`, `drop_after_chunks`, `stall_after_chunks`,
`error_after_chunks`, `split_lines`, `eof_delay`; they apply to every streamed reply, chat and
pull) plus `fail_next()` (never taken by the background polls `/api/version` and `/api/ps`
unless aimed at them with `path=`); `hold_after_chunks` pauses a reply there (`fake.holding`
is set) until `fake.release()`; `content_on_done` puts the last piece of a chat reply on its
`done` line; `lines_per_write` batches lines into fewer writes for benchmarks.
Every request is recorded in `fake.requests`; `fake.disconnected` is set (and
`fake.disconnects` counted) when a client goes away in the middle of a streamed response.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import re
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Self

from aiohttp import web

from .schema import instance_of

VERSION = "0.13.0"
STREAM_ERROR = "an error was encountered while running the model"
_LOAD_NS = 1_500_000
_PROMPT_TOKEN_NS = 250_000
_EVAL_TOKEN_NS = 12_000_000
_GO_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


@dataclass
class FakeModel:
    """A locally installed model and what it answers.

    `chunks` is either the number of pieces `reply` is cut into or the exact pieces; `None`
    streams one piece per word. `capabilities=None` imitates an Ollama too old to report them.
    """

    name: str
    family: str = "llama"
    families: tuple[str, ...] | None = None
    capabilities: tuple[str, ...] | None = ("completion",)
    context_length: int = 131072
    size: int = 1_321_098_329
    parameter_size: str = "1.2B"
    reply: str = "Hello from the fake Ollama!"
    chunks: int | Sequence[str] | None = None
    thinking: str = ""
    # Calls made when offered tools: (function name, arguments).
    tool_calls: Sequence[tuple[str, dict[str, Any]]] = ()
    embedding_dim: int = 8
    show_fails: bool = False

    @property
    def full_name(self) -> str:
        """The name Ollama's errors use: the registry path of the model."""
        return f"registry.ollama.ai/library/{self.name}"

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.name.encode()).hexdigest()

    def pieces(self) -> list[str]:
        if self.chunks is None:
            return re.findall(r"\s*\S+", self.reply) or [self.reply]
        if isinstance(self.chunks, int):
            return split(self.reply, self.chunks)
        return list(self.chunks)


@dataclass
class RecordedRequest:
    method: str
    path: str
    body: Any
    peer: tuple[str, int] | None = None  # the client's address: same peer, same connection


@dataclass
class _Fault:
    status: int
    message: str
    path: str | None = None  # None: any endpoint but the BACKGROUND_PATHS


# What llmhub polls on its own every few seconds (health, loaded models): a fault meant for
# the test's next call must not be taken by a poll that happens to come first.
BACKGROUND_PATHS = frozenset({"/api/version", "/api/ps"})


@dataclass
class _Stream:
    """A streamed reply: its chunk lines and the line that ends it."""

    chunks: list[bytes]
    last: bytes


@dataclass
class _Batch:
    """Lines sent in one write, after `sent` chunks went out."""

    sent: int
    lines: list[bytes]


def split(text: str, parts: int) -> list[str]:
    """`text` cut into `parts` nearly equal pieces."""
    size = max(1, math.ceil(len(text) / max(1, parts)))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def go_json(value: Any) -> bytes:
    """JSON the way Ollama's Go server writes it (compact, HTML characters escaped)."""
    return json.dumps(value, separators=(",", ":")).translate(_GO_ESCAPES).encode()


def _error(status: int, message: str) -> web.Response:
    return web.Response(
        status=status, body=go_json({"error": message}), content_type="application/json"
    )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _vector(text: str, dimensions: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [digest[i % len(digest)] / 255.0 - 0.5 for i in range(dimensions)]


def _words(messages: Iterable[Any]) -> int:
    return sum(len(str(m.get("content", "")).split()) for m in messages if isinstance(m, dict))


_THINK_LEVELS = ("high", "medium", "low", "max")


class FakeOllama:
    def __init__(
        self,
        models: Iterable[FakeModel] | None = None,
        *,
        pullable: Iterable[FakeModel] = (),
        port: int = 0,
        host: str = "127.0.0.1",  # another loopback address: one of several behind a name
    ) -> None:
        default = [FakeModel("llama3.2:1b")]
        self.models: dict[str, FakeModel] = {m.name: m for m in (models or default)}
        self.pullable: dict[str, FakeModel] = {m.name: m for m in pullable}
        self.loaded: dict[str, datetime] = {}
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port = port  # 0: any free one; a fixed one lets a test "restart" Ollama
        self.host = host
        self.reset()

    def reset(self) -> None:
        """Fault knobs off and observations cleared: a shared fake, fresh for the next test."""
        # Fault knobs.
        self.chunk_delay = 0.0
        self.drop_after_chunks: int | None = None
        self.stall_after_chunks: int | None = None
        self.hold_after_chunks: int | None = None
        self.holding = asyncio.Event()
        self._released = asyncio.Event()
        self.error_after_chunks: int | None = None
        self.stream_error = STREAM_ERROR
        self.split_lines = False
        self.split_delay = 0.005
        self.lines_per_write = 1
        self.tool_call_ids = True
        # Ignore `format`, as Ollama before 0.5 (structured outputs) did.
        self.ignore_format = False
        # Send the last content piece on the `done` line, as Ollama does when a parser flushes.
        self.content_on_done = False
        # Pause between the last line and the end of the chunked body (Go writes them apart).
        self.eof_delay = 0.0
        # Observations.
        self.requests: list[RecordedRequest] = []
        self.disconnected = asyncio.Event()
        self.disconnects = 0
        self._faults: deque[_Fault] = deque()

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}"

    async def __aenter__(self) -> Self:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/api/chat", self._chat)
        app.router.add_get("/api/tags", self._tags)
        app.router.add_post("/api/show", self._show)
        app.router.add_get("/api/ps", self._ps)
        app.router.add_post("/api/pull", self._pull)
        app.router.add_delete("/api/delete", self._delete)
        app.router.add_post("/api/embed", self._embed)
        app.router.add_get("/api/version", self._version)
        # Cancel handlers when the client goes away, so a dropped stream is observed at once.
        self._runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self._port).start()
        self._port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- knobs -------------------------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 500,
        message: str = "llama runner process has terminated",
        path: str | None = None,
    ) -> None:
        """Answer the next `n` requests to `path` with this error; without a path, the next
        `n` requests to any endpoint except the background polls (`BACKGROUND_PATHS`)."""
        self._faults.extend(_Fault(status, message, path) for _ in range(n))

    def script(
        self,
        model: str,
        reply: str,
        *,
        chunks: int | Sequence[str] | None = None,
        thinking: str = "",
        tool_calls: Sequence[tuple[str, dict[str, Any]]] = (),
    ) -> None:
        """Set what `model` answers next (and from then on)."""
        target = self.models[model]
        target.reply, target.chunks, target.thinking = reply, chunks, thinking
        target.tool_calls = tool_calls

    def release(self) -> None:
        """Let replies paused at `hold_after_chunks` go on."""
        self._released.set()

    def calls(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    # -- helpers -----------------------------------------------------------------------------

    async def _begin(self, request: web.Request) -> tuple[Any, web.Response | None]:
        """Record the request; return its JSON body and an injected fault, if any."""
        body = await request.json() if request.can_read_body else None
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.requests.append(RecordedRequest(request.method, request.path, body, peer))
        fault = self._take_fault(request.path)
        if fault is not None:
            return body, _error(fault.status, fault.message)
        if request.can_read_body and not isinstance(body, dict):
            return body, _error(400, "invalid request body")
        return body, None

    def _find(self, body: Any) -> FakeModel | None:
        return self.models.get(str(body.get("model") or body.get("name") or ""))

    def _take_fault(self, path: str) -> _Fault | None:
        for fault in self._faults:
            if fault.path == path or (fault.path is None and path not in BACKGROUND_PATHS):
                self._faults.remove(fault)
                return fault
        return None

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake up when the server shuts down so cleanup never waits on a stall."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    def _details(self, model: FakeModel) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": model.family,
            "families": list(model.families or (model.family,)),
            "parameter_size": model.parameter_size,
            "quantization_level": "Q4_K_M",
        }

    # -- chat --------------------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body, fault = await self._begin(request)
        if fault is not None:
            return fault
        model = self._find(body)
        if model is None:
            return _error(404, f'model "{body.get("model")}" not found, try pulling it first')
        if refused := self._check_capabilities(model, body):
            return refused
        self._mark_loaded(model.name, body.get("keep_alive"))
        calls = self._tool_calls(model, body)
        thinking, content, reason = self._reply(model, body)
        if calls:
            content = []
        stats = self._stats(body, len(thinking) + len(content) + 3 * len(calls), reason)
        if body.get("stream", True) is False:
            return self._chat_whole(model, "".join(thinking), "".join(content), calls, stats)
        stream = self._chat_stream(model, thinking, content, calls, stats)
        return await self._write_stream(request, stream)

    def _check_capabilities(self, model: FakeModel, body: dict[str, Any]) -> web.Response | None:
        capabilities = model.capabilities or ()
        think = body.get("think")
        if think is not None and not isinstance(think, bool) and think not in _THINK_LEVELS:
            return _error(
                400,
                f'invalid think value: {json.dumps(think)} (must be "high", "medium", '
                '"low", "max", true, or false)',
            )
        if body.get("tools") and "tools" not in capabilities:
            return _error(400, f"{model.full_name} does not support tools")
        if think and "thinking" not in capabilities:
            return _error(400, f'"{model.name}" does not support thinking')
        return None

    def _tool_calls(self, model: FakeModel, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The calls the model makes: its scripted ones for tools it was offered, unless it was
        just given a tool's result (then it answers in words)."""
        messages = body.get("messages") or []
        if not body.get("tools") or (messages and messages[-1].get("role") == "tool"):
            return []
        offered = {t.get("function", {}).get("name") for t in body["tools"]}
        calls = []
        for name, arguments in model.tool_calls:
            if name not in offered:
                continue
            function: dict[str, Any] = {"name": name, "arguments": arguments}
            call: dict[str, Any] = {"function": function}
            if self.tool_call_ids:
                function["index"] = len(calls)
                call = {
                    "id": "call_" + hashlib.sha256(f"{name}{len(calls)}".encode()).hexdigest()[:8],
                    **call,
                }
            calls.append(call)
        return calls

    def _reply(self, model: FakeModel, body: dict[str, Any]) -> tuple[list[str], list[str], str]:
        """Thinking pieces, content pieces and done_reason, with `num_predict` applied."""
        think = body.get("think")
        wants_thinking = think if think is not None else "thinking" in (model.capabilities or ())
        thinking = re.findall(r"\s*\S+", model.thinking) if wants_thinking else []
        content = model.pieces()
        form = None if self.ignore_format else body.get("format")
        if form == "json":
            content = split(json.dumps({"reply": model.reply}), 3)
        elif isinstance(form, dict):
            content = split(json.dumps(instance_of(form)), 3)
        limit = (body.get("options") or {}).get("num_predict")
        if isinstance(limit, int) and 0 <= limit < len(thinking) + len(content):
            thinking = thinking[:limit]
            content = content[: max(0, limit - len(thinking))]
            return thinking, content, "length"
        return thinking, content, "stop"

    def _stats(self, body: dict[str, Any], tokens: int, reason: str) -> dict[str, Any]:
        prompt_tokens = _words(body.get("messages") or ())
        prompt_ns, eval_ns = prompt_tokens * _PROMPT_TOKEN_NS, tokens * _EVAL_TOKEN_NS
        return {
            "done_reason": reason,
            "done": True,
            "total_duration": _LOAD_NS + prompt_ns + eval_ns,
            "load_duration": _LOAD_NS,
            "prompt_eval_count": prompt_tokens,
            "prompt_eval_duration": prompt_ns,
            "eval_count": tokens,
            "eval_duration": eval_ns,
        }

    def _chat_whole(
        self,
        model: FakeModel,
        thinking: str,
        content: str,
        calls: list[dict[str, Any]],
        stats: dict[str, Any],
    ) -> web.Response:
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if thinking:
            message["thinking"] = thinking
        if calls:
            message["tool_calls"] = calls
        reply = {"model": model.name, "created_at": _now(), "message": message, **stats}
        return web.Response(body=go_json(reply), content_type="application/json")

    def _chat_stream(
        self,
        model: FakeModel,
        thinking: list[str],
        content: list[str],
        calls: list[dict[str, Any]],
        stats: dict[str, Any],
    ) -> _Stream:
        head = b'{"model":%s,"created_at":%s,"message":{"role":"assistant","content":' % (
            go_json(model.name),
            go_json(_now()),
        )
        think_head = head + b'"","thinking":'
        tail = b'},"done":false}\n'
        done_content = ""
        if self.content_on_done and content:
            *content, done_content = content
        lines = [think_head + go_json(piece) + tail for piece in thinking]
        lines += [head + go_json(piece) + tail for piece in content]
        # Each tool call goes out as soon as the model finished it, in a line of its own.
        calls_head = head + b'"","tool_calls":'
        lines += [calls_head + go_json([call]) + tail for call in calls]
        last = head + go_json(done_content) + b"}," + go_json(stats)[1:] + b"\n"
        return _Stream(lines, last)

    # -- streaming with faults ---------------------------------------------------------------

    async def _write_stream(self, request: web.Request, stream: _Stream) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        try:
            for batch in self._batches(stream.chunks):
                if await self._fault_before(request, response, batch.sent):
                    return response
                await self._write(response, batch.lines)
                if self.chunk_delay:
                    await self._sleep(self.chunk_delay)
            if await self._fault_before(request, response, len(stream.chunks)):
                return response
            await self._write(response, [stream.last])
            if self.eof_delay:
                await self._sleep(self.eof_delay)
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnects += 1
            self.disconnected.set()
            raise
        return response

    def _batches(self, lines: list[bytes]) -> Iterator[_Batch]:
        """Lines grouped per write; a batch never straddles a fault point."""
        stops = {
            k
            for k in (
                self.drop_after_chunks,
                self.stall_after_chunks,
                self.error_after_chunks,
                self.hold_after_chunks,
            )
            if k is not None
        }
        per_write = 1 if self.chunk_delay else max(1, self.lines_per_write)
        start = 0
        while start < len(lines):
            end = min(len(lines), start + per_write)
            end = min([end, *(k for k in stops if start < k < end)])
            yield _Batch(start, lines[start:end])
            start = end

    async def _fault_before(
        self, request: web.Request, response: web.StreamResponse, sent: int
    ) -> bool:
        """Apply the fault due once `sent` chunks went out; True when the stream is over."""
        if sent == self.drop_after_chunks:
            # End the connection without the terminating chunk of the chunked encoding.
            assert request.transport is not None
            request.transport.close()
            return True
        if sent == self.stall_after_chunks:
            await self._closing.wait()
            return True
        if sent == self.hold_after_chunks and not self._released.is_set():
            self.holding.set()
            released = asyncio.ensure_future(self._released.wait())
            closing = asyncio.ensure_future(self._closing.wait())
            await asyncio.wait([released, closing], return_when=asyncio.FIRST_COMPLETED)
            released.cancel()
            closing.cancel()
            return self._closing.is_set()
        if sent == self.error_after_chunks:
            await self._write(response, [go_json({"error": self.stream_error}) + b"\n"])
            await response.write_eof()
            return True
        return False

    async def _write(self, response: web.StreamResponse, lines: list[bytes]) -> None:
        if not self.split_lines:
            await response.write(b"".join(lines))
            return
        for line in lines:
            # Two writes with a pause between, so the client receives half a line per read.
            middle = len(line) // 2
            await response.write(line[:middle])
            await self._sleep(self.split_delay)
            await response.write(line[middle:])

    # -- models ------------------------------------------------------------------------------

    async def _tags(self, request: web.Request) -> web.Response:
        _, fault = await self._begin(request)
        if fault is not None:
            return fault
        models = [
            {
                "name": m.name,
                "model": m.name,
                "modified_at": "2025-05-04T17:37:44.706015396-07:00",
                "size": m.size,
                "digest": m.digest,
                "details": self._details(m),
            }
            for m in self.models.values()
        ]
        return web.json_response({"models": models}, dumps=lambda v: go_json(v).decode())

    async def _show(self, request: web.Request) -> web.Response:
        body, fault = await self._begin(request)
        if fault is not None:
            return fault
        model = self._find(body)
        if model is None:
            return _error(404, f"model '{body.get('model')}' not found")
        if model.show_fails:
            return _error(500, "failed to read model manifest")
        show: dict[str, Any] = {
            "modelfile": f'# Modelfile generated by "ollama show"\nFROM {model.name}\n',
            "parameters": 'stop                           "<|eot_id|>"',
            "template": "{{ .Prompt }}",
            "details": self._details(model),
            "model_info": {
                "general.architecture": model.family,
                "general.parameter_count": 1_235_814_432,
                f"{model.family}.context_length": model.context_length,
                f"{model.family}.embedding_length": 2048,
            },
            "modified_at": "2025-05-04T17:37:44.706015396-07:00",
        }
        if model.capabilities is not None:
            show["capabilities"] = list(model.capabilities)
        return web.json_response(show, dumps=lambda v: go_json(v).decode())

    def _mark_loaded(self, name: str, keep_alive: Any) -> None:
        if keep_alive in (0, "0", "0s"):
            self.loaded.pop(name, None)
        else:
            self.loaded[name] = datetime.now(UTC) + timedelta(minutes=5)

    async def _ps(self, request: web.Request) -> web.Response:
        _, fault = await self._begin(request)
        if fault is not None:
            return fault
        running = [
            {
                "name": name,
                "model": name,
                "size": self.models[name].size + 500_000_000,
                "digest": self.models[name].digest,
                "details": self._details(self.models[name]),
                "expires_at": expires.isoformat(),
                "size_vram": self.models[name].size,
                "context_length": 4096,
            }
            for name, expires in self.loaded.items()
            if name in self.models
        ]
        return web.json_response({"models": running}, dumps=lambda v: go_json(v).decode())

    async def _pull(self, request: web.Request) -> web.StreamResponse:
        body, fault = await self._begin(request)
        if fault is not None:
            return fault
        name = str(body.get("model") or body.get("name") or "")
        model = self.pullable.get(name)
        lines = [go_json({"status": "pulling manifest"}) + b"\n"]
        if model is None:
            error = go_json({"error": "pull model manifest: file does not exist"}) + b"\n"
            return await self._write_stream(request, _Stream(lines, error))
        lines += self._pull_progress(model)
        self.models[name] = model
        return await self._write_stream(
            request, _Stream(lines, go_json({"status": "success"}) + b"\n")
        )

    def _pull_progress(self, model: FakeModel) -> list[bytes]:
        lines = []
        for index, total in enumerate((model.size, 1_084)):
            digest = "sha256:" + hashlib.sha256(f"{model.name}/{index}".encode()).hexdigest()
            for completed in (0, total // 2, total):
                progress = {"status": f"pulling {digest[7:19]}", "digest": digest, "total": total}
                if completed:  # Ollama omits zero fields
                    progress["completed"] = completed
                lines.append(go_json(progress) + b"\n")
        lines += [
            go_json({"status": "verifying sha256 digest"}) + b"\n",
            go_json({"status": "writing manifest"}) + b"\n",
        ]
        return lines

    async def _delete(self, request: web.Request) -> web.Response:
        body, fault = await self._begin(request)
        if fault is not None:
            return fault
        model = self._find(body)
        if model is None:
            return _error(404, f"model '{body.get('model')}' not found")
        del self.models[model.name]
        self.loaded.pop(model.name, None)
        return web.Response()

    # -- embeddings, version -----------------------------------------------------------------

    async def _embed(self, request: web.Request) -> web.Response:
        body, fault = await self._begin(request)
        if fault is not None:
            return fault
        model = self._find(body)
        if model is None:
            return _error(404, f'model "{body.get("model")}" not found, try pulling it first')
        if "embedding" not in (model.capabilities or ()):
            return _error(400, f'"{model.name}" does not support embedding')
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or ())
        dimensions = body.get("dimensions") or model.embedding_dim
        self._mark_loaded(model.name, body.get("keep_alive"))
        reply = {
            "model": model.name,
            "embeddings": [_vector(text, dimensions) for text in texts],
            "total_duration": 14_143_917,
            "load_duration": 1_019_500,
            "prompt_eval_count": sum(len(text.split()) for text in texts),
        }
        return web.json_response(reply, dumps=lambda v: go_json(v).decode())

    async def _version(self, request: web.Request) -> web.Response:
        _, fault = await self._begin(request)
        return fault or web.json_response({"version": VERSION})
