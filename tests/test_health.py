"""Readiness that tells the truth: providers and the database probed in the background, a
failed call marking its provider down at once, `/health/ready` answered from memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg

from tests.chat_support import eventually
from tests.fakes.ollama import FakeModel, FakeOllama
from tests.hub import Client, hub_settings, started_hub

CHAT = "llama3.2:1b"


async def ready(client: Client) -> tuple[int, dict[str, Any]]:
    response = await client.get("/health/ready")
    return response.status, response.body


async def test_readiness_follows_ollama_going_away_and_coming_back(
    database_url: str, data_dir: Path
) -> None:
    first = FakeOllama([FakeModel(CHAT)])
    await first.__aenter__()
    port = int(first.url.rsplit(":", 1)[1])
    settings = hub_settings(database_url, data_dir, ollama={"url": first.url}, health_interval=0.1)
    async with started_hub(settings) as hub:
        probe = hub.client()
        status, body = await ready(probe)
        assert (status, body["status"]) == (200, "ok")

        await first.__aexit__(None, None, None)  # Ollama stops; nobody calls a model

        async def degraded() -> dict[str, Any] | None:
            status, body = await ready(probe)
            return body if status == 200 and body["status"] == "degraded" else None

        body = await eventually(degraded, what="readiness to notice Ollama is gone")
        assert body["providers"]["ollama"]["ok"] is False
        assert body["database"]["ok"] is True

        # Back, with a model pulled meanwhile: the catalog follows without waiting its TTL.
        async with FakeOllama([FakeModel(CHAT), FakeModel("qwen3:4b")], port=port) as second:

            async def recovered() -> dict[str, Any] | None:
                status, body = await ready(probe)
                return body if status == 200 and body["status"] == "ok" else None

            await eventually(recovered, what="readiness to notice Ollama is back")
            user = await hub.signup("admin@example.com")

            async def listed() -> bool:
                models = await user.get("/api/models")
                return "qwen3:4b" in {m["id"] for m in models.body["data"]}

            assert await eventually(listed, what="the catalog to list the new model")
            assert second.calls("/api/chat") == []


async def test_a_call_that_finds_ollama_unreachable_marks_it_down_at_once(
    database_url: str, data_dir: Path
) -> None:
    async with FakeOllama([FakeModel(CHAT)]) as fake:
        # Probes far apart: only the failed call can have changed the state.
        settings = hub_settings(
            database_url, data_dir, ollama={"url": fake.url}, health_interval=3600
        )
        async with started_hub(settings) as hub:
            admin = await hub.signup("admin@example.com")
            api = await hub.key_client(admin)
            assert (await ready(hub.client()))[1]["status"] == "ok"
            fake.fail_next(status=503, message="server busy, please try again")
            chat = {"model": CHAT, "messages": [{"role": "user", "content": "Hi"}]}
            refused = await api.post("/v1/chat/completions", chat)
            assert refused.status == 503, refused.text

            status, body = await ready(hub.client())
            assert (status, body["status"]) == (200, "degraded")
            assert body["providers"]["ollama"] == {"ok": False, "latency_ms": None, "detail": None}
            details = (await admin.get("/health/ready")).body["providers"]["ollama"]
            assert "server busy" in details["detail"]
            assert "server busy" in details["last_error"] and details["last_error_at"]


async def test_probing_readiness_costs_no_upstream_or_database_call(
    database_url: str, data_dir: Path
) -> None:
    async with FakeOllama([FakeModel(CHAT)]) as fake:
        settings = hub_settings(
            database_url, data_dir, ollama={"url": fake.url}, health_interval=3600
        )
        async with started_hub(settings) as hub:
            probe = hub.client()
            acquired = hub.app.state.metrics.db_acquire
            fake.reset()
            before = _count(acquired)
            for _ in range(20):
                status, body = await ready(probe)
                assert (status, body["status"]) == (200, "ok")
            assert fake.requests == []
            assert _count(acquired) == before  # not one pool connection taken


def _count(histogram: Any) -> float:
    return sum(s.value for m in histogram.collect() for s in m.samples if s.name.endswith("_count"))


async def test_readiness_is_503_while_the_database_refuses_connections(
    database_url: str, data_dir: Path, pg_admin_url: str
) -> None:
    name = database_url.rsplit("/", 1)[1].split("?", 1)[0]
    settings = hub_settings(database_url, data_dir, ollama={"url": "http://127.0.0.1:9"},
                            health_interval=0.1)  # fmt: skip
    async with started_hub(settings) as hub:
        probe = hub.client()
        assert (await ready(probe))[0] == 200
        admin = await asyncpg.connect(pg_admin_url)
        try:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )

            async def unavailable() -> dict[str, Any] | None:
                status, body = await ready(probe)
                return body if status == 503 else None

            body = await eventually(unavailable, what="readiness to notice the database")
            assert body["status"] == "unavailable" and body["database"]["ok"] is False
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            await admin.close()

        async def back() -> bool:
            return (await ready(probe))[0] == 200

        assert await eventually(back, timeout=15, what="readiness to recover")
