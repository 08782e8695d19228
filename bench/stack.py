"""The processes a benchmark run starts on loopback, and what it prepares in the database.

`Stack` starts the fake upstream (`bench.upstream`), the baseline relay (`bench.relay`) and
`llmhub serve` on an external PostgreSQL (a throwaway database, migrated, with one admin user,
an API key and title generation off), each as its own process, and stops them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parents[1]
EMAIL = "bench@example.com"
PASSWORD = "bench password 123"  # noqa: S105  # a throwaway database's


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_file_limit() -> None:
    """Thousands of sockets at once: the soft limit up to the hard one (children inherit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@dataclass
class Server:
    name: str
    process: asyncio.subprocess.Process
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


async def _spawn(
    name: str, args: list[str], env: dict[str, str], work: Path, announce: str | None
) -> tuple[asyncio.subprocess.Process, str, Path]:
    """Start `python ARGS`; with `announce`, wait for the stdout line starting with it."""
    log = work / f"{name}.log"
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            stdout=asyncio.subprocess.PIPE if announce else asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )
    line = ""
    if announce:
        assert process.stdout is not None
        async with asyncio.timeout(60):
            async for raw in process.stdout:
                if raw.decode().startswith(announce):
                    line = raw.decode().removeprefix(announce).strip()
                    break
        if not line:
            await process.wait()
            raise RuntimeError(f"{name} exited {process.returncode}:\n{log.read_text()[-3000:]}")
    return process, line, log


async def _wait_http(url: str, process: asyncio.subprocess.Process, log: Path) -> None:
    async with aiohttp.ClientSession() as session, asyncio.timeout(60):
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            if process.returncode is not None:
                tail = (await asyncio.to_thread(log.read_text))[-3000:]
                raise RuntimeError(f"exited {process.returncode}:\n{tail}")
            await asyncio.sleep(0.02)


async def start_upstream(work: Path) -> Server:
    process, port, log = await _spawn(
        "upstream", ["-m", "bench.upstream"], {}, work, "listening on "
    )
    return Server("upstream", process, int(port), log)


async def start_relay(work: Path, upstream: Server) -> Server:
    port = free_port()
    args = ["-m", "bench.relay", "--upstream", upstream.url, "--port", str(port)]
    process, _, log = await _spawn("relay", args, {}, work, None)
    server = Server("relay", process, port, log)
    await _wait_http(server.url + "/health", process, log)
    return server


def hub_env(database_url: str, upstream: Server, data_dir: Path) -> dict[str, str]:
    return {
        "LLMHUB_DATABASE_URL": database_url,
        "LLMHUB_DATA_DIR": str(data_dir),
        "LLMHUB_SECRET_KEY": "bench-secret-key-" + "x" * 32,
        "LLMHUB_OLLAMA__URL": upstream.url,
        "LLMHUB_LIMITS__REQUESTS_PER_MINUTE": "0",
    }


async def start_hub(work: Path, database_url: str, upstream: Server) -> Server:
    env = hub_env(database_url, upstream, work / "hub-data")
    args = ["-m", "llmhub", "serve", "--port", "0"]
    process, url, log = await _spawn("llmhub", args, env, work, "llmhub serving on ")
    server = Server("llmhub", process, int(url.rsplit(":", 1)[1]), log)
    await _wait_http(server.url + "/health/ready", process, log)
    return server


async def wait_for_model(hub: Server, api_key: str, model: str) -> None:
    """Until the hub's catalog lists `model` (its first refresh runs in the background)."""
    headers = {"Authorization": f"Bearer {api_key}"}
    async with aiohttp.ClientSession(headers=headers) as session, asyncio.timeout(30):
        while True:
            async with session.get(hub.url + "/v1/models") as resp:
                body = await resp.json()
                if any(m["id"] == model for m in body.get("data", ())):
                    return
            await asyncio.sleep(0.05)


async def prepare_database(database_url: str) -> str:
    """Migrate, create the bench user (admin) and return an API key of theirs."""
    from llmhub import accounts
    from llmhub.db import create_pool
    from llmhub.migrations import migrate
    from llmhub.repo import chats as chats_repo

    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    pool = await create_pool(database_url, min_size=1, max_size=2, connect_timeout=10)
    try:
        user = await accounts.create_user(pool, EMAIL, PASSWORD, role="admin")
        key, _ = await accounts.create_api_key(pool, user.id, name="bench")
        # Every send is a chat's first exchange; a title call after each would double the load.
        await chats_repo.update_user_preferences(
            pool, user.id, {"title_generation": {"enabled": False, "model": None}}
        )
    finally:
        await pool.close()
    return key


@dataclass
class Stack:
    work: Path
    database_url: str
    api_key: str
    upstream: Server
    relay: Server
    hub: Server

    async def upstream_stats(self, reset: bool = False) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.request("POST" if reset else "GET", self.upstream.url + "/stats") as resp,
        ):
            stats: dict[str, Any] = await resp.json()
            return stats

    async def new_chats(self, count: int) -> list[str]:
        """`count` empty chats of the bench user, ids in order."""
        headers = {"Authorization": f"Bearer {self.api_key}"}
        limit = asyncio.Semaphore(20)
        async with aiohttp.ClientSession(headers=headers) as session:

            async def one() -> str:
                async with (
                    limit,
                    session.post(self.hub.url + "/api/chats", json={"title": "bench"}) as resp,
                ):
                    body = await resp.json()
                    assert resp.status == 201, body
                    return str(body["chat"]["id"])

            return list(await asyncio.gather(*(one() for _ in range(count))))


@contextlib.asynccontextmanager
async def running_stack(admin_url: str) -> AsyncIterator[Stack]:
    from tests.pg import throwaway_database

    raise_file_limit()
    with tempfile.TemporaryDirectory(prefix="llmhub-bench-") as tmp:
        work = Path(tmp)
        async with throwaway_database(admin_url, prefix="llmhub_bench") as database_url:
            api_key = await prepare_database(database_url)
            servers: list[Server] = []
            try:
                upstream = await start_upstream(work)
                servers.append(upstream)
                relay = await start_relay(work, upstream)
                servers.append(relay)
                hub = await start_hub(work, database_url, upstream)
                servers.append(hub)
                from bench.upstream import MODEL

                await wait_for_model(hub, api_key, MODEL)
                yield Stack(work, database_url, api_key, upstream, relay, hub)
            finally:
                for server in reversed(servers):
                    await server.stop()
