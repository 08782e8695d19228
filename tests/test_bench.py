"""The benchmark suite runs end to end at tiny sizes, so it cannot rot. No figure is judged
here (timing belongs to the benchmark, on a quiet machine); what is checked is that every
scenario ran, and that every answer arrived whole and, through the chat UI, was stored."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


async def test_quick_benchmark_runs_every_scenario(pg_admin_url: str, tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bench" / "run.py"),
        "--quick",
        "--json",
        str(output),
        "--admin-url",
        pg_admin_url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    printed, _ = await process.communicate()
    assert process.returncode == 0, printed.decode()[-4000:]
    assert b"| scenario | figure | relay (baseline) | llmhub | ratio |" in printed

    results = json.loads(output.read_text())
    figures = results["figures"]
    scenarios = {f["scenario"] for f in figures}
    assert scenarios == {
        "1 TTFT",
        "2 rps",
        "3 streams",
        "4 chat UI streams",
        "5 start",
        "6 history",
    }
    for figure in figures:
        if figure["name"].endswith("errors"):
            assert figure["llmhub"] == 0, figure
            assert figure["baseline"] == 0, figure
    streams = results["sizes"]["streams"]
    stored = [f for f in figures if "stored complete" in f["name"]]
    assert [f["llmhub"] for f in stored] == [streams]
    # How many streams overlap upstream is a figure of the machine's load, judged by the
    # benchmark on a quiet machine; here it only has to have been measured.
    opened = [f for f in figures if f["name"].endswith("open upstream at once")]
    assert opened and all(0 < f["llmhub"] <= streams for f in opened)
    # Each gateway's own memory was read from /proc, for both sides.
    rss = [f for f in figures if f["name"].endswith("RSS peak")]
    assert rss and all(f["baseline"] > 10 and f["llmhub"] > 10 for f in rss)  # MB
