"""Startup cost: `llmhub serve` to the first 200 on /health/ready, import time, idle RSS.

Each figure is reported beside a baseline run the same way on this machine: a bare Starlette
app on uvicorn answering /health. Targets: ready < 1.0 s on an external PostgreSQL, import of
llmhub.app < 0.3 s, idle RSS < 80 MB.

    python bench/bench_startup.py [--rounds 5] [--admin-url postgresql://postgres@127.0.0.1/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.pg import admin_url_from_env, throwaway_database

BARE_APP = """
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
async def health(request):
    return JSONResponse({"status": "ok"})
app = Starlette(routes=[Route("/health/ready", health)])
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def time_to_ready(cmd: list[str], port: int, env: dict[str, str]) -> tuple[float, float]:
    """Seconds from spawn to the first 200 on /health/ready, and idle RSS (MB) once ready."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}/health/ready"
    try:
        while True:
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"exited {proc.returncode}: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
        time.sleep(0.5)  # let startup garbage settle before reading idle memory
        return elapsed, rss_mb(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def import_seconds(module: str) -> float:
    """Import time inside a fresh interpreter (interpreter start-up itself excluded)."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return float(result.stdout)


def summarize(name: str, samples: list[float], unit: str) -> float:
    median = statistics.median(samples)
    print(f"  {name:42} median {median:7.3f} {unit}  (min {min(samples):.3f}, n={len(samples)})")
    return median


def llmhub_cmd(port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "llmhub", "serve", "--port", str(port), *extra]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--admin-url", default=admin_url_from_env())
    args = parser.parse_args()
    env = {**os.environ, "LLMHUB_OLLAMA__URL": "http://127.0.0.1:9", "LLMHUB_LOG_LEVEL": "warning"}
    work = Path(tempfile.mkdtemp(prefix="llmhub-bench-"))
    (work / "bare_app.py").write_text(BARE_APP)
    bare_env = {**env, "PYTHONPATH": str(work)}

    print("import time")
    base_import = summarize(
        "baseline: import starlette + uvicorn",
        [import_seconds("starlette.applications, uvicorn") for _ in range(args.rounds)],
        "s",
    )
    hub_import = summarize(
        "llmhub: import llmhub.app",
        [import_seconds("llmhub.app") for _ in range(args.rounds)],
        "s",
    )
    print(f"  ratio {hub_import / base_import:.2f}x   target: llmhub.app < 0.300 s")

    def bare_run() -> tuple[float, float]:
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
        return time_to_ready(cmd, port, bare_env)

    bare = [bare_run() for _ in range(args.rounds)]
    print("\nserve → first 200 on /health/ready")
    base_ready = summarize("baseline: bare Starlette on uvicorn", [r[0] for r in bare], "s")

    async def run_external() -> list[tuple[float, float]]:
        async with throwaway_database(args.admin_url, prefix="llmhub_bench") as url:
            runs = []
            for i in range(args.rounds + 1):
                port = free_port()
                data = work / f"ext-{i}"
                runs.append(
                    time_to_ready(
                        llmhub_cmd(port, "--database-url", url, "--data-dir", str(data)), port, env
                    )
                )
            return runs

    external = asyncio.run(run_external())
    summarize("llmhub, external PostgreSQL, first start", [external[0][0]], "s")
    ext_ready = summarize("llmhub, external PostgreSQL", [r[0] for r in external[1:]], "s")
    print(f"  ratio {ext_ready / base_ready:.2f}x   target: < 1.0 s")

    data = work / "embedded"
    embedded = []
    for _ in range(args.rounds + 1):
        port = free_port()
        embedded.append(time_to_ready(llmhub_cmd(port, "--data-dir", str(data)), port, env))
    summarize("llmhub, embedded PostgreSQL, first start (initdb)", [embedded[0][0]], "s")
    emb_ready = summarize("llmhub, embedded PostgreSQL, restart", [r[0] for r in embedded[1:]], "s")
    print(f"  ratio {emb_ready / base_ready:.2f}x")

    print("\nidle RSS after ready")
    base_rss = summarize("baseline: bare Starlette on uvicorn", [r[1] for r in bare], "MB")
    hub_rss = summarize("llmhub, external PostgreSQL", [r[1] for r in external[1:]], "MB")
    summarize("llmhub, embedded (llmhub process only)", [r[1] for r in embedded[1:]], "MB")
    print(f"  ratio {hub_rss / base_rss:.2f}x   target: < 80 MB")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
