"""The bus between replicas, on PostgreSQL LISTEN/NOTIFY and on Redis pub/sub."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import asyncpg
import pytest
import redis.asyncio as aioredis

from llmhub.bus import Bus, PostgresBus, RedisBus, split_utf8
from tests.redis_server import private_redis

Factory = Callable[[], Awaitable[Bus]]


@pytest.fixture(scope="module", params=["postgres", "redis"])
async def backend(request: pytest.FixtureRequest, module_database_url: str) -> AsyncIterator[str]:
    if request.param == "postgres":
        yield module_database_url
        return
    async with private_redis() as url:
        yield url


@pytest.fixture
async def buses(backend: str) -> AsyncIterator[Factory]:
    """Start buses on the module's backend; all are closed after the test."""
    async with AsyncExitStack() as stack:

        async def make() -> Bus:
            bus: Bus = RedisBus(backend) if backend.startswith("redis") else PostgresBus(backend)
            await bus.start()
            stack.push_async_callback(bus.aclose)
            return bus

        yield make


class Inbox:
    def __init__(self) -> None:
        self.bodies: list[str] = []
        self._changed = asyncio.Event()

    def __call__(self, body: str) -> None:
        self.bodies.append(body)
        self._changed.set()

    async def wait_for(self, count: int) -> list[str]:
        async with asyncio.timeout(10):
            while len(self.bodies) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.bodies


async def test_messages_reach_other_replicas_in_order_but_not_the_sender(buses: Factory) -> None:
    a, b, c = await buses(), await buses(), await buses()
    at_a, at_b, at_c = Inbox(), Inbox(), Inbox()
    await a.subscribe("news", at_a)
    await b.subscribe("news", at_b)
    await c.subscribe("other", at_c)
    sent = [f"message {i}" for i in range(500)]
    for body in sent:
        a.publish("news", body)
    assert await at_b.wait_for(500) == sent
    await a.flush()
    b.publish("news", "from b")
    assert await at_a.wait_for(1) == ["from b"]
    assert at_c.bodies == []  # another channel


async def test_a_message_over_the_notify_limit_arrives_whole(buses: Factory) -> None:
    a, b = await buses(), await buses()
    inbox = Inbox()
    await b.subscribe("big", inbox)
    body = "é✓" * 20_000 + " end"  # ~100 kB of multi-byte characters
    a.publish("big", body)
    a.publish("big", "after")
    assert await inbox.wait_for(2) == [body, "after"]


async def test_broadcast_returns_once_every_replica_has_handled_it(buses: Factory) -> None:
    a, b, c = await buses(), await buses(), await buses()
    seen: list[str] = []
    await b.subscribe("drop", lambda body: seen.append("b:" + body))
    await c.subscribe("drop", lambda body: seen.append("c:" + body))
    assert await a.broadcast("drop", "session-1", timeout=30) is True
    # No waiting here: the handlers on both other replicas have already run.
    assert sorted(seen) == ["b:session-1", "c:session-1"]


async def test_broadcast_with_nobody_else_listening_returns_at_once(buses: Factory) -> None:
    alone = await buses()
    assert await alone.broadcast("drop", "x") is True


async def test_unsubscribed_channels_are_no_longer_delivered(buses: Factory) -> None:
    a, b = await buses(), await buses()
    first, second = Inbox(), Inbox()
    await b.subscribe("topic", first)
    await b.subscribe("control", second)
    a.publish("topic", "1")
    await first.wait_for(1)
    await b.unsubscribe("topic", first)
    a.publish("topic", "2")
    a.publish("control", "marker")  # sent after "2", so "2" would have arrived before it
    await second.wait_for(1)
    assert first.bodies == ["1"]


async def test_a_lost_connection_is_reestablished_and_reported(
    buses: Factory, backend: str
) -> None:
    a, b = await buses(), await buses()
    inbox = Inbox()
    reconnected = asyncio.Event()
    b.on_reconnect(reconnected.set)
    await b.subscribe("news", inbox)
    await kill_bus_connections(backend, b)
    async with asyncio.timeout(10):
        await reconnected.wait()
    assert b.connected
    # Listening again on the channels it had: a new message gets through.
    assert await a.broadcast("news", "after the outage", timeout=30) is True
    assert inbox.bodies == ["after the outage"]


async def kill_bus_connections(backend: str, bus: Bus) -> None:
    """Cut `bus`'s connection from the server side, as a database restart or failover would."""
    if backend.startswith("redis"):
        client = aioredis.from_url(backend)
        try:
            clients = await client.client_list(_type="pubsub")
            ours = [c["id"] for c in clients if c["name"] == f"llmhub-bus-{bus.replica}"]
            assert len(ours) == 1, clients
            await client.client_kill_filter(_id=ours[0])
        finally:
            await client.aclose()
        return
    conn = await asyncpg.connect(backend)
    try:
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1",
            f"llmhub bus {bus.replica}",
        )
        assert killed == 1
    finally:
        await conn.close()


def test_utf8_split_never_cuts_a_character() -> None:
    text = "aé✓𝄞" * 1000
    pieces = split_utf8(text, 7)
    assert "".join(pieces) == text
    assert all(len(p.encode()) <= 7 for p in pieces)
