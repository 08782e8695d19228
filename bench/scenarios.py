"""The scenarios of `bench/run.py`. Each returns plain numbers for one round; `run.py` takes
the medians over rounds and sets them side by side.

Targets: `direct` is the load generator calling the fake upstream itself, `relay` the baseline,
`v1` llmhub's `/v1/chat/completions`, `ui` the chat UI's `POST /api/chats/{id}/messages`
(which also stores both messages). Every response is checked: the text a client would show
must be exactly what the upstream sent, or the request counts as an error.
"""

from __future__ import annotations

import asyncio
import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from bench import loadgen
from bench.loadgen import Connection, Run, Sample, connect
from bench.stack import Stack
from bench.upstream import MODEL, expected_text

# -- what each target is sent, and how a client reads its answer ---------------------------------


def _prompt(tokens: int, delay_ms: float) -> str:
    return f"tokens={tokens} delay_ms={delay_ms:g}"


def text_of_ndjson(body: bytes) -> str:
    parts = []
    lines = [json.loads(line) for line in body.splitlines() if line.strip()]
    if not lines or lines[-1].get("done") is not True:
        raise ValueError("no final done line")
    for line in lines:
        parts.append(line["message"]["content"])
    return "".join(parts)


def text_of_v1(body: bytes) -> str:
    """As the openai SDK reads it: `data:` events, the deltas' content, `[DONE]` last."""
    events = [e for e in body.split(b"\n\n") if e.strip()]
    if not events or events[-1] != b"data: [DONE]":
        raise ValueError(f"does not end with [DONE]: {body[-200:]!r}")
    parts = []
    finished = None
    for event in events[:-1]:
        if not event.startswith(b"data: "):
            raise ValueError(f"not an SSE data event: {event[:100]!r}")
        chunk = json.loads(event[6:])
        if "error" in chunk:
            raise ValueError(f"error event: {chunk['error']}")
        for choice in chunk["choices"]:
            parts.append(choice["delta"].get("content") or "")
            finished = choice.get("finish_reason") or finished
    if finished != "stop":
        raise ValueError(f"finish_reason {finished!r}")
    return "".join(parts)


def ui_events(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in body.split(b"\n\n"):
        name, data = "", None
        for line in block.split(b"\n"):
            if line.startswith(b"event: "):
                name = line[7:].decode()
            elif line.startswith(b"data: "):
                data = json.loads(line[6:])
        if name and data is not None:
            events.append((name, data))
    return events


def text_of_ui(body: bytes) -> str:
    events = ui_events(body)
    if not events or events[-1][0] != "end":
        raise ValueError(f"no end event: {body[-200:]!r}")
    if events[-1][1]["status"] != "complete":
        raise ValueError(f"answer {events[-1][1]['status']}: {events[-1][1].get('error')}")
    return "".join(data["text"] for name, data in events if name == "delta")


@dataclass(frozen=True)
class Target:
    name: str
    port: int
    pid: int | None  # the gateway process measured; None when calling the upstream directly
    request: Callable[[int, int, float], bytes]  # (index, tokens, delay_ms) -> raw request
    text_of: Callable[[bytes], str]

    def check(self, run: Run, tokens: int) -> None:
        """Marks every response whose text differs from what the upstream sent."""
        expected = expected_text(tokens)
        for sample in run.samples:
            if sample.error is None:
                try:
                    text = self.text_of(sample.body)
                except (ValueError, KeyError, TypeError) as exc:
                    sample.error = f"invalid response: {exc}"
                    continue
                if text != expected:
                    sample.error = f"wrong text: {text[:60]!r}… ({len(text)} chars)"
            sample.body = b""  # checked: free the memory


def targets(stack: Stack, chats: Sequence[str] = ()) -> dict[str, Target]:
    host = "127.0.0.1"
    auth = {"Authorization": f"Bearer {stack.api_key}"}

    def ollama(port: int) -> Callable[[int, int, float], bytes]:
        def build(index: int, tokens: int, delay_ms: float) -> bytes:
            body = {
                "model": MODEL,
                "messages": [{"role": "user", "content": _prompt(tokens, delay_ms)}],
                "stream": True,
            }
            return loadgen.post(host, port, "/api/chat", body, {})

        return build

    def v1(index: int, tokens: int, delay_ms: float) -> bytes:
        body = {
            "model": MODEL,
            "messages": [{"role": "user", "content": _prompt(tokens, delay_ms)}],
            "stream": True,
        }
        return loadgen.post(host, stack.hub.port, "/v1/chat/completions", body, auth)

    def ui(index: int, tokens: int, delay_ms: float) -> bytes:
        chat = chats[index % len(chats)]
        body = {"content": _prompt(tokens, delay_ms), "parent_id": None, "model": MODEL}
        return loadgen.post(host, stack.hub.port, f"/api/chats/{chat}/messages", body, auth)

    return {
        "direct": Target(
            "direct", stack.upstream.port, None, ollama(stack.upstream.port), text_of_ndjson
        ),
        "relay": Target(
            "relay", stack.relay.port, stack.relay.pid, ollama(stack.relay.port), text_of_ndjson
        ),
        "v1": Target("v1", stack.hub.port, stack.hub.pid, v1, text_of_v1),
        "ui": Target("ui", stack.hub.port, stack.hub.pid, ui, text_of_ui),
    }


def percentile(samples: Sequence[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _ms(seconds: float | None) -> float:
    return float("nan") if seconds is None else seconds * 1000


# -- 1. time to first token, one client ------------------------------------------------------------


async def ttft(stack: Stack, requests: int, tokens: int = 50) -> dict[str, Any]:
    """TTFT p50/p99 (ms) per target, requests interleaved across targets so drift hits all."""
    chats = await stack.new_chats(1)
    by_name = targets(stack, chats)
    conns: dict[str, Connection] = {}
    samples: dict[str, list[Sample]] = {name: [] for name in by_name}
    for name, target in by_name.items():  # warm-up: connections, caches, code paths
        conns[name] = await connect("127.0.0.1", target.port)
        for i in range(5):
            await conns[name].request(target.request(i, tokens, 0))
    for i in range(requests):
        for name, target in by_name.items():
            if conns[name].closed:
                conns[name] = await connect("127.0.0.1", target.port)
            samples[name].append(await conns[name].request(target.request(i, tokens, 0)))
    for conn in conns.values():
        conn.close()
    result: dict[str, Any] = {}
    for name, target in by_name.items():
        run = Run(samples[name])
        target.check(run, tokens)
        times = [_ms(s.ttft) for s in run.samples if s.error is None]
        result[name] = {
            "p50_ms": percentile(times, 0.5),
            "p99_ms": percentile(times, 0.99),
            "errors": len(run.errors),
            "first_error": run.errors[0] if run.errors else None,
        }
    return result


# -- 2. requests per second, and CPU per request ---------------------------------------------------


async def _measured(target: Target, run: Callable[[], Any]) -> tuple[Run, float]:
    """The run, and the gateway CPU seconds it cost."""
    before = loadgen.cpu_seconds(target.pid) if target.pid else 0.0
    result: Run = await run()
    cpu = (loadgen.cpu_seconds(target.pid) - before) if target.pid else 0.0
    return result, cpu


async def throughput(
    stack: Stack, levels: Sequence[int], seconds: float, tokens: int = 50
) -> dict[str, Any]:
    by_name = targets(stack)
    result: dict[str, Any] = {}
    for level in levels:
        for name in ("relay", "v1"):
            target = by_name[name]
            run, cpu = await _measured(
                target,
                lambda t=target, c=level: loadgen.closed_loop(
                    "127.0.0.1",
                    t.port,
                    lambda i, t=t: t.request(i, tokens, 0),
                    concurrency=c,
                    duration=seconds,
                ),
            )
            target.check(run, tokens)
            done = len(run.samples) or 1
            result[f"{name}@{level}"] = {
                "rps": run.rate,
                "cpu_ms_per_request": cpu * 1000 / done,
                "errors": len(run.errors),
                "first_error": run.errors[0] if run.errors else None,
            }
    return result


async def cost_fit(
    stack: Stack, requests: int, sizes: Sequence[int] = (10, 50, 200)
) -> dict[str, Any]:
    """Gateway CPU per request at 1 client over several answer lengths, fitted as a fixed cost
    per request plus a cost per chunk (least squares)."""
    by_name = targets(stack)
    result: dict[str, Any] = {}
    for name in ("relay", "v1"):
        target = by_name[name]
        points = []
        errors = 0
        for tokens in sizes:
            run, cpu = await _measured(
                target,
                lambda t=target, n=tokens: loadgen.closed_loop(
                    "127.0.0.1",
                    t.port,
                    lambda i, t=t, n=n: t.request(i, n, 0),
                    concurrency=1,
                    count=requests,
                ),
            )
            target.check(run, tokens)
            errors += len(run.errors)
            points.append((tokens, cpu * 1000 / max(1, len(run.samples))))
        slope, intercept = statistics.linear_regression(*zip(*points, strict=True))
        result[name] = {
            "fixed_ms": intercept,
            "per_chunk_us": slope * 1000,
            "points": points,
            "errors": errors,
        }
    return result


# -- 3 and 4. a thousand slow streams at once ------------------------------------------------------


async def streams(
    stack: Stack,
    count: int,
    tokens: int,
    delay_ms: float,
    names: Sequence[str],
    chats: Sequence[str] = (),
) -> dict[str, Any]:
    by_name = targets(stack, chats)
    ideal = tokens * delay_ms / 1000
    result: dict[str, Any] = {}
    for name in names:
        target = by_name[name]
        await asyncio.sleep(0.5)  # let the last round's connections close everywhere
        await stack.upstream_stats(reset=True)
        idle_rss = loadgen.rss_bytes(target.pid) if target.pid else 0
        requests = [target.request(i, tokens, delay_ms) for i in range(count)]
        db_before = await _db_counters(stack) if name == "ui" else None
        async with loadgen.PeakRss(target.pid or stack.upstream.pid) as rss:
            run, cpu = await _measured(
                target,
                lambda t=target, r=requests: loadgen.all_at_once("127.0.0.1", t.port, r),
            )
        upstream = await stack.upstream_stats()
        generations = _generation_ids(run) if name == "ui" else []
        target.check(run, tokens)
        ok = [s for s in run.samples if s.error is None]
        entry: dict[str, Any] = {
            "errors": len(run.errors),
            "first_error": run.errors[0] if run.errors else None,
            "max_open_upstream": upstream["max_open"],
            "stream_p50_s": percentile([s.total for s in ok], 0.5),
            "stream_p99_s": percentile([s.total for s in ok], 0.99),
            "ideal_s": ideal,
            "ttft_p50_ms": percentile([_ms(s.ttft) for s in ok], 0.5),
            "ttft_p99_ms": percentile([_ms(s.ttft) for s in ok], 0.99),
            "cpu_us_per_chunk": cpu * 1e6 / (count * tokens),
            "rss_peak_mb": rss.peak / 2**20,
            "rss_per_stream_kb": max(0, rss.peak - idle_rss) / 1024 / count,
        }
        if name == "ui":
            entry.update(await _stored(stack, generations, tokens, db_before, run.elapsed))
        result[name] = entry
    return result


def _generation_ids(run: Run) -> list[str]:
    ids = []
    for sample in run.samples:
        for name, data in ui_events(sample.body) if sample.error is None else ():
            if name == "start":
                ids.append(data["generation_id"])
    return ids


async def _db_counters(stack: Stack) -> dict[str, int]:
    """Rows updated in `messages` and transactions committed, as the statistics collector
    has them (every backend reports within a second of going idle)."""
    await asyncio.sleep(1.2)
    conn = await asyncpg.connect(stack.database_url)
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'messages') AS upd, "
            "(SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()) AS xact"
        )
    finally:
        await conn.close()
    return {"updates": int(row["upd"]), "commits": int(row["xact"])}


async def _stored(
    stack: Stack, generations: list[str], tokens: int, before: dict[str, int] | None, elapsed: float
) -> dict[str, Any]:
    """How many answers the database holds complete, and what writing them cost."""
    after = await _db_counters(stack)
    conn = await asyncpg.connect(stack.database_url)
    try:
        stored = await conn.fetchval(
            "SELECT count(*) FROM messages WHERE id = ANY($1::uuid[]) AND status = 'complete' "
            "AND content = $2",
            generations,
            expected_text(tokens),
        )
    finally:
        await conn.close()
    assert before is not None
    finished = len(generations)
    return {
        "stored_complete": int(stored),
        "answers": finished,
        # Every answer is updated once when it finishes; the rest are partial flushes.
        "flush_rows_per_s": max(0, after["updates"] - before["updates"] - finished) / elapsed,
        "db_commits_per_s": (after["commits"] - before["commits"]) / elapsed,
    }
