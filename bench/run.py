"""Every benchmark in one command: llmhub beside the thinnest relay, in the same run.

Starts everything itself on loopback: a fast fake Ollama (`bench/upstream.py`), the baseline
Starlette + aiohttp raw-bytes relay (`bench/relay.py`) and `llmhub serve` on an external
PostgreSQL (a throwaway database on LLMHUB_TEST_DATABASE_URL's server, default
postgresql://postgres@127.0.0.1:5432/postgres). Each scenario runs `--rounds` times with the
baseline and llmhub interleaved; figures are the medians over rounds. Prints a Markdown table
and writes every figure, its baseline and their ratio as JSON.

    python bench/run.py [--quick] [--rounds N] [--only ttft,rps,fit,streams,ui,startup,search]
                        [--json PATH]

`--quick` runs tiny sizes (a smoke test, a few seconds): its figures mean nothing.
The machine may be shared: compare ratios, not absolute figures, and rerun on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import bench_chats, scenarios
from bench.stack import Stack, free_port, hub_env, running_stack
from tests.pg import admin_url_from_env

ALL = ("ttft", "rps", "fit", "streams", "ui", "startup", "search")


@dataclass(frozen=True)
class Sizes:
    rounds: int = 3
    ttft_requests: int = 200  # per target and round
    rps_levels: tuple[int, ...] = (1, 10, 50, 200)
    rps_seconds: float = 3.0
    fit_requests: int = 200  # per answer length and round
    streams: int = 1000
    stream_tokens: int = 100
    stream_delay_ms: float = 20.0
    startup_rounds: int = 5
    chats: bench_chats.Sizes = field(default_factory=bench_chats.Sizes)
    search_iterations: int = 300


FULL = Sizes()
QUICK = Sizes(
    rounds=1,
    ttft_requests=5,
    rps_levels=(1, 10),
    rps_seconds=0.3,
    fit_requests=5,
    streams=20,
    stream_tokens=10,
    stream_delay_ms=20.0,
    startup_rounds=1,
    chats=bench_chats.QUICK,
    search_iterations=5,
)


@dataclass
class Figure:
    """One line of the table: llmhub's figure beside the baseline's, and the target."""

    scenario: str
    name: str
    unit: str
    baseline: float | None
    llmhub: float | None
    target: str = ""
    ok: bool | None = None
    ratio: float | None = None
    correctness: bool = False  # a miss here is a wrong or lost answer, not a slow one

    def __post_init__(self) -> None:
        self.correctness = self.name.endswith(("errors", "stored complete (worst round)"))
        if self.baseline and self.llmhub is not None and math.isfinite(self.baseline):
            self.ratio = self.llmhub / self.baseline


def _median(rounds: list[dict[str, Any]], *path: str) -> float:
    values = []
    for r in rounds:
        value: Any = r
        for key in path:
            value = value[key]
        values.append(float(value))
    finite = [v for v in values if math.isfinite(v)]
    return statistics.median(finite) if finite else float("nan")


def _total(rounds: list[dict[str, Any]], *path: str) -> int:
    count = 0
    for r in rounds:
        value: Any = r
        for key in path:
            value = value[key]
        count += int(value)
    return count


def _check(value: float | None, bound: float, at_most: bool = True) -> bool | None:
    if value is None or not math.isfinite(value):
        return None
    return value <= bound if at_most else value >= bound


# -- scenarios -------------------------------------------------------------------------------------


async def run_ttft(stack: Stack, sizes: Sizes, raw: dict[str, Any]) -> list[Figure]:
    rounds = [await scenarios.ttft(stack, sizes.ttft_requests) for _ in range(sizes.rounds)]
    raw["ttft"] = rounds
    figures = []
    for q, bounds in (("p50", (1.0, 3.0)), ("p99", (5.0, 10.0))):
        direct = _median(rounds, "direct", f"{q}_ms")
        relay = _median(rounds, "relay", f"{q}_ms") - direct
        for name, label, bound in (("v1", "/v1", bounds[0]), ("ui", "chat UI", bounds[1])):
            added = _median(rounds, name, f"{q}_ms") - direct
            figures.append(
                Figure(
                    "1 TTFT",
                    f"TTFT added over direct, {label}, 1 client, {q}",
                    "ms",
                    relay,
                    added,
                    f"≤ {bound:g} ms",
                    _check(added, bound),
                )
            )
    errors = sum(_total(rounds, name, "errors") for name in ("v1", "ui"))
    figures.append(
        Figure("1 TTFT", "errors", "", _total(rounds, "relay", "errors"), errors, "0", errors == 0)
    )
    return figures


async def run_rps(stack: Stack, sizes: Sizes, raw: dict[str, Any]) -> list[Figure]:
    rounds = [
        await scenarios.throughput(stack, sizes.rps_levels, sizes.rps_seconds)
        for _ in range(sizes.rounds)
    ]
    raw["rps"] = rounds
    figures = []
    for level in sizes.rps_levels:
        relay = _median(rounds, f"relay@{level}", "rps")
        hub = _median(rounds, f"v1@{level}", "rps")
        ok = _check(hub / relay if relay else None, 0.8, at_most=False)
        figures.append(
            Figure("2 rps", f"requests/s, 50 tokens, c={level}", "req/s", relay, hub, "≥ 0.8x", ok)
        )
    for level in sizes.rps_levels:
        relay = _median(rounds, f"relay@{level}", "cpu_ms_per_request")
        hub = _median(rounds, f"v1@{level}", "cpu_ms_per_request")
        ok = _check(hub / relay if relay else None, 2.0)
        figures.append(
            Figure(
                "2 rps",
                f"gateway CPU per 50-token request, c={level}",
                "ms",
                relay,
                hub,
                "≤ 2x",
                ok,
            )
        )
    errors = sum(_total(rounds, f"v1@{level}", "errors") for level in sizes.rps_levels)
    relay_errors = sum(_total(rounds, f"relay@{level}", "errors") for level in sizes.rps_levels)
    figures.append(Figure("2 rps", "errors", "", relay_errors, errors, "0", errors == 0))
    return figures


async def run_fit(stack: Stack, sizes: Sizes, raw: dict[str, Any]) -> list[Figure]:
    rounds = [await scenarios.cost_fit(stack, sizes.fit_requests) for _ in range(sizes.rounds)]
    raw["fit"] = rounds
    return [
        Figure(
            "2 rps",
            "fixed CPU per request (fit over 10/50/200 tokens, c=1)",
            "ms",
            _median(rounds, "relay", "fixed_ms"),
            _median(rounds, "v1", "fixed_ms"),
        ),
        Figure(
            "2 rps",
            "CPU per chunk (same fit)",
            "µs",
            _median(rounds, "relay", "per_chunk_us"),
            _median(rounds, "v1", "per_chunk_us"),
        ),
    ]


def _stream_figures(label: str, rounds: list[dict[str, Any]], hub: str, n: int) -> list[Figure]:
    scenario = "3 streams" if hub == "v1" else "4 chat UI streams"

    def both(*path: str) -> tuple[float, float]:
        return _median(rounds, "relay", *path), _median(rounds, hub, *path)

    ideal = _median(rounds, hub, "ideal_s")
    errors = _total(rounds, hub, "errors")
    opened = min(int(r[hub]["max_open_upstream"]) for r in rounds)
    relay_opened = min(int(r["relay"]["max_open_upstream"]) for r in rounds)
    relay_p50, hub_p50 = both("stream_p50_s")
    figures = [
        Figure(
            scenario,
            f"{label}: errors",
            "",
            _total(rounds, "relay", "errors"),
            errors,
            "0",
            errors == 0,
        ),
        Figure(
            scenario,
            f"{label}: streams open upstream at once",
            "",
            relay_opened,
            opened,
            f"= {n}",
            opened == n,
        ),
        Figure(
            scenario,
            f"{label}: stream time p50 / ideal",
            "x",
            relay_p50 / ideal,
            hub_p50 / ideal,
            "≤ 1.10",
            _check(hub_p50 / ideal, 1.10),
        ),
        Figure(
            scenario,
            f"{label}: stream time p99 / ideal",
            "x",
            *(v / ideal for v in both("stream_p99_s")),
        ),
        Figure(scenario, f"{label}: TTFT p50", "ms", *both("ttft_p50_ms")),
        Figure(
            scenario, f"{label}: gateway CPU per relayed chunk", "µs", *both("cpu_us_per_chunk")
        ),
        Figure(
            scenario,
            f"{label}: RSS peak",
            "MB",
            *both("rss_peak_mb"),
            "≤ 300 MB",
            _check(both("rss_peak_mb")[1], 300),
        ),
        Figure(
            scenario,
            f"{label}: RSS per open stream",
            "KB",
            *both("rss_per_stream_kb"),
            "≤ 50 KB",
            _check(both("rss_per_stream_kb")[1], 50),
        ),
    ]
    if hub == "ui":
        stored = min(int(r["ui"]["stored_complete"]) for r in rounds)
        figures += [
            Figure(
                scenario,
                f"{label}: answers stored complete (worst round)",
                "",
                None,
                stored,
                f"= {n}",
                stored == n,
            ),
            Figure(
                scenario,
                f"{label}: partial-flush row writes per second",
                "rows/s",
                None,
                _median(rounds, "ui", "flush_rows_per_s"),
            ),
            Figure(
                scenario,
                f"{label}: database commits per second",
                "commits/s",
                None,
                _median(rounds, "ui", "db_commits_per_s"),
            ),
        ]
    return figures


async def run_streams(stack: Stack, sizes: Sizes, raw: dict[str, Any]) -> list[Figure]:
    n, tokens, delay = sizes.streams, sizes.stream_tokens, sizes.stream_delay_ms
    rounds = [
        await scenarios.streams(stack, n, tokens, delay, ("direct", "relay", "v1"))
        for _ in range(sizes.rounds)
    ]
    raw["streams"] = rounds
    label = f"{n} streams x {tokens} tokens, {delay:g} ms apart, /v1"
    return _stream_figures(label, rounds, "v1", n)


async def run_ui_streams(stack: Stack, sizes: Sizes, raw: dict[str, Any]) -> list[Figure]:
    n, tokens, delay = sizes.streams, sizes.stream_tokens, sizes.stream_delay_ms
    chats = await stack.new_chats(n)
    rounds = [
        await scenarios.streams(stack, n, tokens, delay, ("relay", "ui"), chats)
        for _ in range(sizes.rounds)
    ]
    raw["ui_streams"] = rounds
    return _stream_figures(f"the same through the chat UI (stored), {n} streams", rounds, "ui", n)


async def run_startup(stack: Stack, sizes: Sizes, raw: dict[str, Any]) -> list[Figure]:
    from bench import bench_startup

    bare_dir = stack.work / "bare"
    bare_dir.mkdir(exist_ok=True)
    (bare_dir / "bare_app.py").write_text(bench_startup.BARE_APP)
    env = {**os.environ, **hub_env(stack.database_url, stack.upstream, stack.work / "startup")}
    env["LLMHUB_LOG_LEVEL"] = "warning"
    bare, hub = [], []
    for _ in range(sizes.startup_rounds):
        port = free_port()
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "bare_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
        bare_env = {**env, "PYTHONPATH": str(bare_dir)}
        bare.append(await asyncio.to_thread(bench_startup.time_to_ready, cmd, port, bare_env))
        port = free_port()
        cmd = [sys.executable, "-m", "llmhub", "serve", "--port", str(port)]
        hub.append(await asyncio.to_thread(bench_startup.time_to_ready, cmd, port, env))
    raw["startup"] = {"bare": bare, "llmhub": hub}
    ready = statistics.median(r[0] for r in hub)
    rss = statistics.median(r[1] for r in hub)
    return [
        Figure(
            "5 start",
            "serve → first 200 on /health/ready, external PostgreSQL",
            "s",
            statistics.median(r[0] for r in bare),
            ready,
            "≤ 1 s",
            _check(ready, 1.0),
        ),
        Figure(
            "5 start",
            "idle RSS once ready",
            "MB",
            statistics.median(r[1] for r in bare),
            rss,
            "≤ 80 MB",
            _check(rss, 80),
        ),
    ]


async def run_search(admin_url: str, sizes: Sizes, raw: dict[str, Any]) -> list[Figure]:
    rows = await bench_chats.run(admin_url, sizes.chats, sizes.search_iterations)
    raw["search"] = rows
    label = f"{sizes.chats.messages:,} messages"
    figures = []
    for name, p50, p99 in rows:
        kind = name.split()[0]
        bound = bench_chats.TARGETS_MS[kind]
        if kind == "search":
            figures.append(
                Figure(
                    "6 history",
                    f"{name}, {label}: p99",
                    "ms",
                    None,
                    p99,
                    f"< {bound:g} ms",
                    p99 < bound,
                )
            )
        else:
            figures.append(
                Figure(
                    "6 history",
                    f"{name}, {label}: p50",
                    "ms",
                    None,
                    p50,
                    f"< {bound:g} ms",
                    p50 < bound,
                )
            )
    return figures


# -- output ----------------------------------------------------------------------------------------


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if not math.isfinite(value):
        return "n/a"
    if unit in ("req/s", "rows/s", "commits/s"):
        return f"{value:,.0f}"
    if unit == "" or (float(value).is_integer() and abs(value) >= 10):
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def markdown(figures: list[Figure]) -> str:
    lines = [
        "| scenario | figure | relay (baseline) | llmhub | ratio | target | |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for f in figures:
        unit = f" {f.unit}" if f.unit and f.unit != "x" else ""
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None and math.isfinite(f.ratio) else ""
        verdict = {True: "ok", False: "**MISS**", None: ""}[f.ok]
        baseline = _fmt(f.baseline, f.unit) + (unit if f.baseline is not None else "")
        lines.append(
            f"| {f.scenario} | {f.name} | {baseline} | {_fmt(f.llmhub, f.unit)}{unit} | {ratio} "
            f"| {f.target} | {verdict} |"
        )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


async def main_async(args: argparse.Namespace) -> int:
    sizes = QUICK if args.quick else FULL
    if args.rounds:
        sizes = Sizes(**{**asdict(sizes), "rounds": args.rounds, "chats": sizes.chats})
    only = tuple(args.only.split(",")) if args.only else ALL
    unknown = set(only) - set(ALL)
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    admin_url = args.admin_url or admin_url_from_env()
    info = machine()
    started = time.perf_counter()
    raw: dict[str, Any] = {}
    figures: list[Figure] = []
    steps: list[tuple[str, Callable[..., Any]]] = [
        ("ttft", run_ttft),
        ("rps", run_rps),
        ("fit", run_fit),
        ("streams", run_streams),
        ("ui", run_ui_streams),
        ("startup", run_startup),
    ]
    if any(name in only for name, _ in steps):
        async with running_stack(admin_url) as stack:
            for name, step in steps:
                if name in only:
                    print(f"running {name} …", file=sys.stderr, flush=True)
                    figures += await step(stack, sizes, raw)
    if "search" in only:
        print("running search …", file=sys.stderr, flush=True)
        figures += await run_search(admin_url, sizes, raw)
    info["seconds"] = round(time.perf_counter() - started, 1)
    table = markdown(figures)
    print(table)
    cores = info["cores"]
    print(f"\n{info['cpu']}, {cores} cores; load average at start {info['load_average_at_start']}")
    document = {
        "machine": info,
        "quick": args.quick,
        "sizes": asdict(sizes),
        "figures": [asdict(f) for f in figures],
        "raw": raw,
    }
    text = json.dumps(document, indent=2, default=str) + "\n"
    await asyncio.to_thread(Path(args.json).write_text, text)
    print(f"wrote {args.json}", file=sys.stderr)
    # Timing targets are reported, not enforced: a shared machine misses them for no fault of
    # the code. Wrong or lost answers are failures.
    return 0 if all(f.ok is not False for f in figures if f.correctness) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--rounds", type=int, help="rounds per scenario (default 3, quick 1)")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(ALL)}")
    parser.add_argument("--json", default="bench-results.json", help="where to write the JSON")
    parser.add_argument("--admin-url", help="PostgreSQL superuser URL for throwaway databases")
    args = parser.parse_args(argv)
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main_async(args))
    return uvloop.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
