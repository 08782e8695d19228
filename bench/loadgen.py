"""A lean HTTP/1.1 load generator: raw asyncio sockets and httptools' C parser, keep-alive
connections, one request at a time per connection. Cheap per chunk, so what it measures is
the server's time, not its own.

Each `Sample` records when the first token arrived (the first body bytes holding `marker`) and
when the body ended, counted from the moment the request was written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httptools

FIRST_TOKEN = b"w0 "  # bench.upstream's first token, the same in NDJSON and both SSE shapes


@dataclass(slots=True)
class Sample:
    status: int = 0
    ttft: float | None = None  # seconds from the request to the first token
    total: float = 0.0  # seconds from the request to the end of the response
    body: bytes = b""
    error: str | None = None


class Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self._done: asyncio.Future[None] | None = None
        self._sample = Sample()
        self._sent = 0.0
        self._parts: list[bytes] = []
        self._tail = b""
        self._marker = FIRST_TOKEN
        self._keep_body = True
        self.keep_alive = True

    # -- protocol ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass
        except httptools.HttpParserError as exc:
            self._finish(f"bad response: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._finish(f"connection lost: {exc or 'closed by server'}")

    # -- parser callbacks -------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        self._sample.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        if self._sample.ttft is None:
            window = self._tail + body
            if self._marker in window:
                self._sample.ttft = time.perf_counter() - self._sent
            self._tail = window[-len(self._marker) :]
        if self._keep_body:
            self._parts.append(body)

    def on_message_complete(self) -> None:
        self._sample.total = time.perf_counter() - self._sent
        self._finish(None)

    def _finish(self, error: str | None) -> None:
        if self._done is not None and not self._done.done():
            if error is not None:
                self._sample.error = error
            self._sample.body = b"".join(self._parts)
            self._done.set_result(None)

    # -- use --------------------------------------------------------------------------------

    async def request(self, raw: bytes, *, keep_body: bool = True) -> Sample:
        assert self.transport is not None
        self._sample, self._parts, self._tail = Sample(), [], b""
        self._keep_body = keep_body
        self._done = asyncio.get_running_loop().create_future()
        self._sent = time.perf_counter()
        self.transport.write(raw)
        await self._done
        sample = self._sample
        if sample.error is None and sample.status != 200:
            sample.error = f"HTTP {sample.status}: {sample.body[:200]!r}"
        if not self.keep_alive:
            self.close()
        return sample

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()
            self.closed = True


async def connect(host: str, port: int) -> Connection:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(Connection, host, port)
    return protocol


def post(host: str, port: int, path: str, body: object, headers: dict[str, str]) -> bytes:
    """The raw bytes of a JSON POST."""
    data = json.dumps(body).encode()
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {len(data)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


@dataclass
class Run:
    samples: list[Sample] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def errors(self) -> list[str]:
        return [s.error for s in self.samples if s.error]

    @property
    def rate(self) -> float:
        return len(self.samples) / self.elapsed if self.elapsed else 0.0


async def closed_loop(
    host: str,
    port: int,
    make_request: Callable[[int], bytes],
    *,
    concurrency: int,
    duration: float | None = None,
    count: int | None = None,
    keep_body: bool = True,
) -> Run:
    """`concurrency` workers, each sending its next request when the last one ended, until
    `duration` seconds passed or `count` requests were sent. Connections are opened first."""
    connections = await asyncio.gather(*(connect(host, port) for _ in range(concurrency)))
    run = Run()
    issued = 0
    deadline = 0.0

    async def worker(conn: Connection) -> None:
        nonlocal issued
        while True:
            if count is not None and issued >= count:
                return
            if duration is not None and time.perf_counter() >= deadline:
                return
            index = issued
            issued += 1
            if conn.closed:
                conn = await connect(host, port)
            run.samples.append(await conn.request(make_request(index), keep_body=keep_body))
        conn.close()

    started = time.perf_counter()
    deadline = started + (duration or 0.0)
    try:
        await asyncio.gather(*(worker(c) for c in connections))
    finally:
        for conn in connections:
            conn.close()
    run.elapsed = time.perf_counter() - started
    return run


async def all_at_once(
    host: str, port: int, requests: list[bytes], *, connect_concurrency: int = 200
) -> Run:
    """Every request on its own connection, all in flight together: connections are opened
    first (at most `connect_concurrency` handshakes at a time), then every request is written
    in one go."""
    limit = asyncio.Semaphore(connect_concurrency)

    async def opened() -> Connection:
        async with limit:
            return await connect(host, port)

    connections = await asyncio.gather(*(opened() for _ in requests))
    started = time.perf_counter()
    run = Run()
    try:
        run.samples = list(
            await asyncio.gather(
                *(c.request(r) for c, r in zip(connections, requests, strict=True))
            )
        )
    finally:
        for conn in connections:
            conn.close()
    run.elapsed = time.perf_counter() - started
    return run


# -- the processes under test -------------------------------------------------------------------

_CLOCK_TICKS = float(os.sysconf("SC_CLK_TCK"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class PeakRss:
    """Samples a process's RSS every `interval` seconds while in use; `peak` is the largest."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, rss_bytes(self.pid))
            await asyncio.sleep(self.interval)

    async def __aenter__(self) -> PeakRss:
        self.peak = rss_bytes(self.pid)
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.peak = max(self.peak, rss_bytes(self.pid))
