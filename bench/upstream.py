"""A fast fake Ollama for benchmarks: raw asyncio + httptools, so the upstream is never what
is measured.

It speaks the same wire format as `tests/fakes/ollama.py` (Ollama's docs/api.md): `/api/chat`
streams `application/x-ndjson` with chunked transfer encoding, one line (one chunk, one send)
per token, then a `done` line carrying the counts and durations. `/api/tags` and `/api/show`
are enough for llmhub's catalog. The reply is steered by the last user message, so a load
generator decides per request without any side channel: `tokens=50 delay_ms=20`. Token `i` is
the text `w{i} `; with a delay, token `i` goes out at `start + i * delay` and the `done` line at
`start + tokens * delay`; without one, each line goes out on its own turn of the event loop (a
producer as fast as can be, still flushing token by token).

`GET /stats` reports streams open now, the most open at once, and disconnects;
`POST /stats/reset` starts a new measurement.

    python -m bench.upstream [--port 0]     # prints "listening on PORT"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from typing import Any

import httptools

MODEL = "bench:latest"
_CREATED = "2025-05-04T17:37:44.706015396Z"
_SCRIPT = re.compile(rb"tokens=(\d+)(?:\s+delay_ms=(\d+(?:\.\d+)?))?")
_LINE_HEAD = b'{"model":"%s","created_at":"%s","message":{"role":"assistant","content":' % (
    MODEL.encode(),
    _CREATED.encode(),
)
_DETAILS = {
    "parent_model": "",
    "format": "gguf",
    "family": "llama",
    "families": ["llama"],
    "parameter_size": "1.2B",
    "quantization_level": "Q4_K_M",
}


class Stats:
    def __init__(self) -> None:
        self.open = 0
        self.max_open = 0
        self.chats = 0
        self.disconnects = 0

    def as_json(self) -> dict[str, int]:
        return {
            "open": self.open,
            "max_open": self.max_open,
            "chats": self.chats,
            "disconnects": self.disconnects,
        }

    def reset(self) -> None:
        self.max_open, self.chats, self.disconnects = self.open, 0, 0


STATS = Stats()


def token(i: int) -> str:
    return f"w{i} "


def expected_text(tokens: int) -> str:
    return "".join(token(i) for i in range(tokens))


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _content_line(text: str) -> bytes:
    return _LINE_HEAD + json.dumps(text).encode() + b'},"done":false}\n'


def _done_stats(prompt_tokens: int, tokens: int) -> dict[str, Any]:
    return {
        "done_reason": "stop",
        "done": True,
        "total_duration": 1_500_000 + tokens * 12_000_000,
        "load_duration": 1_500_000,
        "prompt_eval_count": prompt_tokens,
        "prompt_eval_duration": prompt_tokens * 250_000,
        "eval_count": tokens,
        "eval_duration": tokens * 12_000_000,
    }


def _done_line(prompt_tokens: int, tokens: int) -> bytes:
    stats = _done_stats(prompt_tokens, tokens)
    return _LINE_HEAD + b'""},' + json.dumps(stats, separators=(",", ":")).encode()[1:] + b"\n"


def _head(status: int, content_type: bytes, length: int | None) -> bytes:
    reason = {200: b"OK", 404: b"Not Found", 400: b"Bad Request"}[status]
    framing = b"Transfer-Encoding: chunked" if length is None else b"Content-Length: %d" % length
    return b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s\r\n\r\n" % (
        status,
        reason,
        content_type,
        framing,
    )


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []
        self.handles: list[asyncio.Handle | asyncio.TimerHandle] = []
        self.streaming = False

    # -- protocol -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        for handle in self.handles:
            handle.cancel()
        if self.streaming:
            self.streaming = False
            STATS.open -= 1
            STATS.disconnects += 1

    # -- parser callbacks -----------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        path, body = self.url.split(b"?", 1)[0], b"".join(self.body)
        self.url, self.body = b"", []
        if path == b"/api/chat" and method == b"POST":
            self._chat(body)
        elif path == b"/api/tags":
            self._json({"models": [_model_entry()]})
        elif path == b"/api/show":
            self._json(_show())
        elif path == b"/api/version":
            self._json({"version": "0.11.4"})
        elif path == b"/stats":
            if method == b"POST":
                STATS.reset()
            self._json(STATS.as_json())
        else:
            self._json({"error": "404 page not found"}, 404)

    # -- responses ------------------------------------------------------------------------

    def _json(self, value: Any, status: int = 200) -> None:
        assert self.transport is not None
        body = json.dumps(value, separators=(",", ":")).encode()
        self.transport.write(_head(status, b"application/json; charset=utf-8", len(body)) + body)

    def _chat(self, raw: bytes) -> None:
        try:
            request = json.loads(raw)
        except ValueError:
            self._json({"error": "invalid request body"}, 400)
            return
        if request.get("model") != MODEL:
            self._json({"error": f'model "{request.get("model")}" not found'}, 404)
            return
        messages = request.get("messages") or [{}]
        prompt = str(messages[-1].get("content", "")).encode()
        found = _SCRIPT.search(prompt)
        tokens = int(found.group(1)) if found else 50
        delay = float(found.group(2) or 0) / 1000 if found else 0.0
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        lines = [_chunk(_content_line(token(i))) for i in range(tokens)]
        lines.append(_chunk(_done_line(prompt_tokens, tokens)) + b"0\r\n\r\n")
        if request.get("stream", True) is False:
            whole = {
                "model": MODEL,
                "created_at": _CREATED,
                "message": {"role": "assistant", "content": expected_text(tokens)},
                **_done_stats(prompt_tokens, tokens),
            }
            self._json(whole)
            return
        assert self.transport is not None
        STATS.chats += 1
        STATS.open += 1
        STATS.max_open = max(STATS.max_open, STATS.open)
        self.streaming = True
        self.transport.write(_head(200, b"application/x-ndjson", None))
        loop = asyncio.get_running_loop()
        self.handles = []
        if delay:
            start = loop.time()
            for i, line in enumerate(lines):
                last = i == len(lines) - 1
                self.handles.append(loop.call_at(start + i * delay, self._send, line, last))
        else:
            self._send_each(iter(lines), len(lines))

    def _send(self, line: bytes, last: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(line)
        if last and self.streaming:
            self.streaming = False
            STATS.open -= 1

    def _send_each(self, lines: Any, left: int) -> None:
        """One line per turn of the loop: as fast as possible, still one flush per token."""
        line = next(lines)
        self._send(line, left == 1)
        if left > 1:
            self.handles = [asyncio.get_running_loop().call_soon(self._send_each, lines, left - 1)]


def _model_entry() -> dict[str, Any]:
    return {
        "name": MODEL,
        "model": MODEL,
        "modified_at": "2025-05-04T17:37:44.706015396-07:00",
        "size": 1_321_098_329,
        "digest": "0" * 64,
        "details": _DETAILS,
    }


def _show() -> dict[str, Any]:
    return {
        "modelfile": f"FROM {MODEL}\n",
        "parameters": "",
        "template": "{{ .Prompt }}",
        "details": _DETAILS,
        "model_info": {"general.architecture": "llama", "llama.context_length": 131072},
        "capabilities": ["completion"],
        "modified_at": "2025-05-04T17:37:44.706015396-07:00",
    }


async def serve(port: int = 0, host: str = "127.0.0.1") -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(_Connection, host, port, backlog=4096)


async def _main(port: int) -> None:
    server = await serve(port)
    print(f"listening on {server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.run(_main(args.port))
    except ImportError:
        asyncio.run(_main(args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
