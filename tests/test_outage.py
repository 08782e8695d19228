"""A database outage is a fast 503 `database_unavailable` with Retry-After, never a 500 or a
hang; readiness answers within its timeout even when PostgreSQL is frozen."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.chat_support import eventually
from tests.hub import Client, Hub, hub_settings, running_hub
from tests.private_pg import PrivatePostgres, private_postgres

# Generous: only there so that a regression (a hang) fails instead of stalling the suite.
HANG = 60


@pytest.fixture(scope="module")
async def pg() -> AsyncIterator[PrivatePostgres]:
    async with private_postgres() as server:
        yield server


@pytest.fixture(scope="module")
async def hub(pg: PrivatePostgres, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Hub]:
    settings = hub_settings(
        pg.url,
        Path(tmp_path_factory.mktemp("data")),
        ollama={"url": "http://127.0.0.1:9"},
        db_acquire_timeout=1,
        db_statement_timeout=1,
        health_interval=0.2,
    )
    async with running_hub(settings) as running:
        yield running


@pytest.fixture(scope="module")
async def alice(hub: Hub) -> Client:
    return await hub.signup("alice@example.com")


def _assert_unavailable(response) -> None:  # type: ignore[no-untyped-def]
    assert response.status == 503, response.text
    assert response.error_code == "database_unavailable"
    assert int(response.headers["Retry-After"]) >= 1


async def test_a_stopped_database_is_a_503_with_retry_after(
    hub: Hub, alice: Client, pg: PrivatePostgres
) -> None:
    await pg.stop()
    try:
        async with asyncio.timeout(HANG):
            _assert_unavailable(await alice.get("/api/chats"))
            _assert_unavailable(await alice.post("/api/chats", {"title": "x"}))
            await eventually(lambda: _ready_is(hub, 503), timeout=HANG, what="unready")
    finally:
        await pg.start()
    assert (await alice.get("/api/chats")).status == 200  # recovered without a restart


async def test_a_frozen_database_cannot_hang_requests_or_readiness(
    hub: Hub, alice: Client, pg: PrivatePostgres
) -> None:
    assert (await alice.get("/api/chats")).status == 200
    pg.freeze()
    try:
        async with asyncio.timeout(HANG):
            # Before the database thaws: a request waits at most the pool's timeouts, and the
            # readiness probe gives up on its own.
            _assert_unavailable(await alice.get("/api/chats"))
            await eventually(lambda: _ready_is(hub, 503), timeout=HANG, what="unready")
    finally:
        pg.thaw()
    await eventually(lambda: _ready_is(hub, 200), timeout=30, what="readiness after the thaw")
    assert (await alice.get("/api/chats")).status == 200


async def _ready_is(hub: Hub, status: int) -> bool:
    return (await hub.client().get("/health/ready")).status == status
