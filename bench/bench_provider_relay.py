"""Relay throughput: `OllamaProvider.chat` against a bare aiohttp read of the same NDJSON stream.

The fake Ollama streams `--chunks` content lines per request. The baselines read the body with
aiohttp and `json.loads` every line and do nothing else: "bare" passes the line's bytes as most
readers do, "bare/str" decodes them to str first as the provider does (json.loads sniffs the
encoding of bytes in Python, which costs about a microsecond a line). The provider does the same
reading plus its own work (reasoning split, events, the final `ChatEnd`). All run in this process
against the same server, interleaved for `--rounds` rounds. The machine may be shared, so each
rate is reported as the median and the best round; the verdict uses the best rounds, which are
the least disturbed by other load.

    python bench/bench_provider_relay.py [--chunks 20000] [--rounds 9] [--lines-per-write 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from providers.base import ChatMessage, ChatRequest
from providers.ollama import OllamaProvider
from tests.fakes.ollama import FakeModel, FakeOllama

MODEL = "bench:latest"
TARGET = 0.80


@dataclass(frozen=True)
class Rates:
    """Chunks per second of each round."""

    rounds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.rounds)

    @property
    def best(self) -> float:
        return max(self.rounds)


@dataclass(frozen=True)
class Result:
    chunks: int
    bare: Rates
    bare_str: Rates
    provider: Rates

    @property
    def ratio(self) -> float:
        """Provider against the bare reader, best rounds."""
        return self.provider.best / self.bare.best

    @property
    def ratio_str(self) -> float:
        return self.provider.best / self.bare_str.best


async def _bare(
    session: aiohttp.ClientSession, url: str, payload: dict[str, object], *, as_str: bool = False
) -> int:
    """Lines read: a plain NDJSON reader with no per-chunk work beyond decoding."""
    count = 0
    loads = json.loads
    async with session.post(url + "/api/chat", json=payload) as resp:
        tail = b""
        async for data in resp.content.iter_any():
            lines = (tail + data).split(b"\n")
            tail = lines.pop()
            for line in lines:
                if line:
                    loads(line.decode() if as_str else line)
                    count += 1
    return count


async def _relay(provider: OllamaProvider, request: ChatRequest) -> int:
    count = 0
    async for _ in provider.chat(request):
        count += 1
    return count


async def _rate(run: Callable[[], Awaitable[int]], chunks: int) -> float:
    started = time.perf_counter()
    lines = await run()
    elapsed = time.perf_counter() - started
    # Both count the content chunks plus the one final line/event.
    if lines != chunks + 1:
        raise RuntimeError(f"expected {chunks + 1} lines/events, got {lines}")
    return chunks / elapsed


async def run(chunks: int = 20_000, rounds: int = 9, lines_per_write: int = 1) -> Result:
    model = FakeModel(MODEL, chunks=[f"tok{i % 97} " for i in range(chunks)])
    request = ChatRequest(model=MODEL, messages=[ChatMessage("user", "go")])
    payload: dict[str, object] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "go"}],
        "stream": True,
    }
    async with FakeOllama([model]) as fake, aiohttp.ClientSession() as session:
        fake.lines_per_write = lines_per_write
        provider = OllamaProvider(fake.url)
        try:
            runners: list[Callable[[], Awaitable[int]]] = [
                lambda: _bare(session, fake.url, payload),
                lambda: _bare(session, fake.url, payload, as_str=True),
                lambda: _relay(provider, request),
            ]
            for runner in runners:  # warm-up: connections, caches, code paths
                await runner()
            rates: list[list[float]] = [[], [], []]
            for _ in range(rounds):
                for runner, samples in zip(runners, rates, strict=True):
                    samples.append(await _rate(runner, chunks))
        finally:
            await provider.aclose()
    return Result(chunks, *(Rates(samples) for samples in rates))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--lines-per-write", type=int, default=1)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.chunks, args.rounds, args.lines_per_write))
    print(f"{result.chunks} chunks per stream, {args.rounds} rounds, chunks/s:")
    print(f"{'':16}{'median':>12}{'best':>12}")
    for label, rates in (
        ("bare", result.bare),
        ("bare/str", result.bare_str),
        ("OllamaProvider", result.provider),
    ):
        print(f"{label:16}{rates.median:>12,.0f}{rates.best:>12,.0f}")
    median_ratio = result.provider.median / result.bare.median
    verdict = "ok" if result.ratio >= TARGET else "BELOW TARGET"
    print(f"provider/bare     : {result.ratio:.1%} best, {median_ratio:.1%} median")
    print(f"provider/bare/str : {result.ratio_str:.1%} best")
    print(f"target provider/bare >= {TARGET:.0%} (best rounds): {verdict}")
    return 0 if result.ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
