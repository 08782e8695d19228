"""`llmhub serve` as a real subprocess, on the embedded and on an external PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg

from llmhub.db import EmbeddedPostgres, describe_url
from tests.fakes.ollama import FakeModel, FakeOllama
from tests.serve import ServeProcess, run_llmhub, serve

# An Ollama that is certainly not there: readiness must not depend on it.
NO_OLLAMA = {"LLMHUB_OLLAMA__URL": "http://127.0.0.1:9"}


async def get(url: str, **kwargs: object) -> tuple[int, dict[str, object], aiohttp.ClientResponse]:
    async with aiohttp.ClientSession() as http, http.get(url, **kwargs) as response:  # type: ignore[arg-type]
        return response.status, await response.json(), response


async def wait_for_ready_status(url: str, wanted: int, timeout: float = 30) -> dict[str, object]:
    """Poll /health/ready until it answers `wanted` (a condition, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        status, body, _ = await get(f"{url}/health/ready")
        if status == wanted:
            return body
        assert time.monotonic() < deadline, f"ready stayed {status}: {body}"
        await asyncio.sleep(0.1)


async def test_embedded_database_serves_and_stops_cleanly(data_dir: Path) -> None:
    async with serve("--data-dir", str(data_dir), env=NO_OLLAMA) as server:
        status, body, response = await get(f"{server.url}/health")
        assert (status, body) == (200, {"status": "ok"})
        assert response.headers["x-request-id"]

        status, body, _ = await get(f"{server.url}/health/ready")
        assert status == 200
        assert body["database"] == {"ok": True, "detail": None}
        assert body["mode"] == "local"
        assert body["status"] == "degraded"  # Ollama is down, the hub is still ready
        assert body["providers"]["ollama"]["ok"] is False  # type: ignore[index]

        assert await server.stop() == 0
    # The embedded server was stopped with us, and its data stays for the next start.
    pgdata = data_dir / "postgres"
    assert (pgdata / "PG_VERSION").exists()
    assert not (pgdata / "postmaster.pid").exists()
    assert (data_dir / "secret_key").exists()
    assert "migration applied" in server.stderr

    async with serve("--data-dir", str(data_dir), env=NO_OLLAMA) as again:
        await wait_for_ready_status(again.url, 200)
        assert await again.stop() == 0
    assert "applying migration" not in again.stderr  # reused, not re-created


async def test_external_database_via_database_url(database_url: str, data_dir: Path) -> None:
    async with serve(
        "--database-url", database_url, "--data-dir", str(data_dir), env=NO_OLLAMA
    ) as server:
        body = await wait_for_ready_status(server.url, 200)
        assert body["database"]["ok"] is True  # type: ignore[index]
        assert await server.stop() == 0
    assert not (data_dir / "postgres").exists()  # no embedded server was started


async def test_ready_follows_the_database_down_and_back(data_dir: Path) -> None:
    external = EmbeddedPostgres(data_dir / "external-pg")  # a server we may stop at will
    url = await asyncio.to_thread(external.start)
    try:
        async with serve(
            "--database-url", url, "--data-dir", str(data_dir / "d"), env=NO_OLLAMA
        ) as server:
            await wait_for_ready_status(server.url, 200)
            await asyncio.to_thread(external.stop)
            body = await wait_for_ready_status(server.url, 503)
            assert body["status"] == "unavailable" and body["database"]["ok"] is False  # type: ignore[index]
            status, live, _ = await get(f"{server.url}/health")
            assert (status, live) == (200, {"status": "ok"})  # liveness does no I/O

            restarted = await asyncio.to_thread(external.start)
            assert restarted == url
            await wait_for_ready_status(server.url, 200)
            assert await server.stop() == 0
    finally:
        await asyncio.to_thread(external.stop)


async def test_unreachable_database_exits_with_a_clear_message(data_dir: Path) -> None:
    dead = "postgresql://llmhub:hunter2-password@127.0.0.1:9/llmhub"
    ran = await run_llmhub(
        *("serve", "--port", "0", "--database-url", dead, "--data-dir", str(data_dir)),
        env={"LLMHUB_DB_CONNECT_TIMEOUT": "1", **NO_OLLAMA},
    )
    text = ran.stderr
    assert ran.returncode == 1, text
    last = text.strip().splitlines()[-1]
    assert last.startswith("llmhub: cannot connect to PostgreSQL at 127.0.0.1:9/llmhub")
    assert "gave up after 1s" in last
    assert "hunter2-password" not in text and "Traceback" not in text


async def test_access_log_and_request_ids_without_secrets(database_url: str, data_dir: Path):
    # Trust auth ignores the password, so a secret can ride along to prove it is never logged.
    secret_url = database_url.replace("postgres@", "postgres:hunter2-db-password@")
    async with serve(
        "--database-url",
        secret_url,
        "--data-dir",
        str(data_dir),
        env={
            **NO_OLLAMA,
            "LLMHUB_SECRET_KEY": "signing-key-that-must-not-leak",
            "LLMHUB_LOG_LEVEL": "debug",
        },
    ) as server:
        _, _, response = await get(
            f"{server.url}/health",
            headers={
                "X-Request-ID": "trace-abc-123",
                "Authorization": "Bearer lh_supersecretkey123",
            },
        )
        assert response.headers["x-request-id"] == "trace-abc-123"
        _, _, response = await get(
            f"{server.url}/health", headers={"X-Request-ID": "bad id with spaces"}
        )
        generated = response.headers["x-request-id"]
        assert generated != "bad id with spaces" and len(generated) == 32
        await get(f"{server.url}/api/nope")
        assert await server.stop() == 0

    logs = server.stderr
    for secret in ("hunter2-db-password", "signing-key-that-must-not-leak", "lh_supersecretkey123"):
        assert secret not in logs
    access = [json.loads(line) for line in server.stderr_lines if '"event": "request"' in line]
    by_id = {line["request_id"]: line for line in access}
    first = by_id["trace-abc-123"]
    assert (first["method"], first["path"], first["status"]) == ("GET", "/health", 200)
    assert isinstance(first["duration_ms"], float) and first["level"] == "info"
    assert by_id[generated]["path"] == "/health"
    assert any(line["path"] == "/api/nope" and line["status"] == 404 for line in access)


@dataclass
class SlowHub:
    server: ServeProcess
    http: aiohttp.ClientSession
    headers: dict[str, str]  # the signed-in user's CSRF token
    words: list[str]  # what the slow model answers, one word per chunk


@contextlib.asynccontextmanager
async def slow_hub(
    database_url: str, data_dir: Path, words: int, **env: str
) -> AsyncIterator[SlowHub]:
    """`llmhub serve` in front of a model that streams a word every 50 ms, one user signed in."""
    answer = [f"w{i} " for i in range(words)]
    async with FakeOllama([FakeModel("slow:1b", reply="".join(answer), chunks=answer)]) as fake:
        fake.chunk_delay = 0.05
        async with (
            serve(
                "--database-url",
                database_url,
                "--data-dir",
                str(data_dir),
                env={"LLMHUB_OLLAMA__URL": fake.url, **env},
            ) as server,
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
        ):
            async with http.post(
                f"{server.url}/api/auth/signup",
                json={"email": "a@example.com", "password": "long enough password"},
            ) as response:
                headers = {"X-CSRF-Token": (await response.json())["csrf_token"]}
            yield SlowHub(server, http, headers, answer)


async def test_sigterm_drains_a_stream_in_flight(database_url: str, data_dir: Path) -> None:
    async with slow_hub(database_url, data_dir, 20) as hub:
        async with hub.http.post(
            f"{hub.server.url}/v1/chat/completions",
            json={
                "model": "ollama/slow:1b",
                "stream": True,
                "messages": [{"role": "user", "content": "hi"}],
            },
            headers=hub.headers,
        ) as response:
            assert response.status == 200
            received = [await response.content.readline()]
            hub.server.process.send_signal(signal.SIGTERM)  # mid-stream
            received += [line async for line in response.content]
        body = b"".join(received).decode()
        assert body.rstrip().endswith("data: [DONE]")
        content = "".join(
            json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
            for line in body.splitlines()
            if line.startswith("data: {")
        )
        assert content == "".join(hub.words)
        assert await hub.server.stop() == 0


async def test_sigterm_gives_running_answers_their_window_then_saves_them(
    database_url: str, data_dir: Path
) -> None:
    # Far longer than the one-second shutdown window.
    async with slow_hub(database_url, data_dir, 200, LLMHUB_SHUTDOWN_TIMEOUT="1") as hub:
        async with hub.http.post(
            f"{hub.server.url}/api/chats", json={"model": "ollama/slow:1b"}, headers=hub.headers
        ) as response:
            chat_id = (await response.json())["chat"]["id"]
        async with hub.http.post(
            f"{hub.server.url}/api/chats/{chat_id}/messages",
            json={"content": "hi"},
            headers=hub.headers,
        ) as response:
            lines = []
            async for raw in response.content:
                lines.append(raw.decode())
                if raw.startswith(b"event: delta"):
                    break
            hub.server.process.send_signal(signal.SIGTERM)
            lines += [raw.decode() async for raw in response.content]
        # The browser was told how its answer ended before the server went away.
        ends = [i for i, line in enumerate(lines) if line.startswith("event: end")]
        assert ends, "".join(lines[-5:])
        end = json.loads(lines[ends[0] + 1].removeprefix("data: "))
        assert end["status"] == "interrupted"
        assert await hub.server.stop() == 0
        full_answer = "".join(hub.words)

    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT status, content FROM messages WHERE role = 'assistant' AND chat_id = $1",
            uuid.UUID(chat_id),
        )
    finally:
        await conn.close()
    assert row["status"] == "interrupted"
    assert row["content"].startswith("w0 w1 ") and len(row["content"]) < len(full_answer)


async def test_sslmode_in_the_database_url_is_honoured(database_url: str, data_dir: Path) -> None:
    async with serve(
        "--database-url",
        database_url + "?sslmode=disable",
        "--data-dir",
        str(data_dir),
        env=NO_OLLAMA,
    ) as server:
        await wait_for_ready_status(server.url, 200)
        assert await server.stop() == 0
    # This test server has no TLS: demanding it must fail, clearly, instead of going plain.
    ran = await run_llmhub(
        *("serve", "--port", "0", "--database-url", database_url + "?sslmode=require"),
        *("--data-dir", str(data_dir)),
        env={"LLMHUB_DB_CONNECT_TIMEOUT": "1", **NO_OLLAMA},
    )
    assert ran.returncode == 1
    last = ran.stderr.strip().splitlines()[-1]
    assert last.startswith(f"llmhub: cannot connect to PostgreSQL at {describe_url(database_url)}")
    assert "SSL" in last or "ssl" in last
