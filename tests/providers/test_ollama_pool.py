"""Several fake Ollama servers behind one OllamaPool: routing by model, least-busy balancing,
failover when a server dies mid-traffic, probing back, pulls and deletes, DNS discovery."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from providers.base import ChatEnd, ChatEvent, ChatMessage, ChatRequest, EmbedRequest, TextDelta
from providers.errors import InvalidRequest, ModelNotFound, ProviderUnavailable
from providers.ollama_pool import OllamaPool
from tests.fakes.ollama import FakeModel, FakeOllama

SHARED = "llama3.2:1b"  # on both servers
ONLY_A = "qwen2.5:0.5b"
ONLY_B = "phi3:mini"
REPLY = "one two three four five six seven eight"


def request(model: str = SHARED) -> ChatRequest:
    return ChatRequest(model=model, messages=[ChatMessage("user", "hi")])


def chat_calls(fake: FakeOllama) -> int:
    return len(fake.calls("/api/chat"))


async def collect(stream: AsyncIterator[ChatEvent]) -> tuple[str, ChatEnd]:
    text, end = [], None
    async for event in stream:
        if isinstance(event, TextDelta):
            text.append(event.text)
        elif isinstance(event, ChatEnd):
            end = event
    assert end is not None
    return "".join(text), end


@contextlib.asynccontextmanager
async def two_servers() -> AsyncIterator[tuple[FakeOllama, FakeOllama, OllamaPool]]:
    shared = FakeModel(SHARED, reply=REPLY)
    async with (
        FakeOllama([shared, FakeModel(ONLY_A, reply="from a")]) as a,
        FakeOllama(
            [shared, FakeModel(ONLY_B, reply="from b")], pullable=[FakeModel("new:1b")]
        ) as b,
    ):
        a.pullable = {"new:1b": FakeModel("new:1b")}
        pool = OllamaPool([a.url, b.url], connect_timeout=2)
        try:
            await pool.list_models()
            yield a, b, pool
        finally:
            await pool.aclose()


async def test_the_catalog_says_where_each_model_lives() -> None:
    async with two_servers() as (a, b, pool):
        where = {m.id: m.locations for m in await pool.list_models()}
        assert where == {SHARED: (a.url, b.url), ONLY_A: (a.url,), ONLY_B: (b.url,)}


async def test_a_model_on_one_server_alone_is_served_there() -> None:
    async with two_servers() as (a, b, pool):
        for _ in range(3):
            assert (await collect(pool.chat(request(ONLY_B))))[0] == "from b"
            assert (await collect(pool.chat(request(ONLY_A))))[0] == "from a"
        assert (chat_calls(a), chat_calls(b)) == (3, 3)


async def test_calls_go_to_the_least_busy_server() -> None:
    async with two_servers() as (a, b, pool):
        a.chunk_delay = b.chunk_delay = 0.05  # long enough answers to overlap
        streams = [pool.chat(request()) for _ in range(3)]
        for stream in streams:
            await anext(stream)  # started: each is in flight on a server now
        busy = sorted([chat_calls(a), chat_calls(b)])
        assert busy == [1, 2]
        fourth = pool.chat(request())
        await anext(fourth)  # goes to the one with a single call
        assert (chat_calls(a), chat_calls(b)) == (2, 2)
        for stream in [*streams, fourth]:
            await stream.aclose()
        # Nothing in flight: calls one after another take turns.
        for _ in range(4):
            await collect(pool.chat(request()))
        assert (chat_calls(a), chat_calls(b)) == (4, 4)


async def test_a_server_killed_mid_traffic_is_skipped_and_probed_back() -> None:
    shared = FakeModel(SHARED, reply=REPLY)
    async with FakeOllama([shared]) as b:
        a = FakeOllama([shared])
        await a.__aenter__()
        port = int(a.url.rsplit(":", 1)[1])
        pool = OllamaPool([a.url, b.url], connect_timeout=2)
        try:
            await pool.list_models()
            a.stall_after_chunks = 1  # A hangs mid-answer until it is killed
            b.chunk_delay = 0.05
            streams = [pool.chat(request()) for _ in range(2)]
            for stream in streams:
                await anext(stream)
            assert (chat_calls(a), chat_calls(b)) == (1, 1)
            await a.__aexit__(None, None, None)  # server A dies with an answer in flight
            outcomes = [await collect(stream) for stream in streams]
            ends = sorted(end.stop_reason for _, end in outcomes)
            assert ends == ["error", "stop"]  # the broken one keeps its partial text, as ever
            b.chunk_delay = 0
            for _ in range(4):  # every later call is answered, by B
                text, end = await collect(pool.chat(request()))
                assert (text, end.stop_reason) == (REPLY, "stop")
            assert chat_calls(b) == 5
            health = await pool.health()
            assert health.ok and "1 of 2" in (health.detail or "")

            async with FakeOllama([shared], port=port) as back:  # A restarts
                health = await pool.health()
                assert health.ok and "2 of 2" in (health.detail or "")
                for _ in range(4):
                    await collect(pool.chat(request()))
                assert chat_calls(back) == 2
        finally:
            await pool.aclose()


async def test_every_server_down_is_unavailable_and_an_unknown_model_not_found() -> None:
    async with two_servers() as (a, b, pool):
        with pytest.raises(ModelNotFound):
            await collect(pool.chat(request("nowhere:7b")))
        a_url, b_url = a.url, b.url
    pool = OllamaPool([a_url, b_url], connect_timeout=2)
    try:
        with pytest.raises(ProviderUnavailable):
            await collect(pool.chat(request()))
        with pytest.raises(ProviderUnavailable):
            await pool.list_models()
        assert not (await pool.health()).ok
    finally:
        await pool.aclose()


async def test_pulls_go_to_every_server_or_to_the_one_named() -> None:
    async with two_servers() as (a, b, pool):
        steps = [step async for step in pool.pull_model("new:1b")]
        assert {step.server for step in steps} == {a.url, b.url}
        assert "new:1b" in a.models and "new:1b" in b.models
        where = {m.id: m.locations for m in await pool.list_models()}
        assert where["new:1b"] == (a.url, b.url)

        await pool.delete_model("new:1b", server=a.url)
        assert "new:1b" not in a.models and "new:1b" in b.models
        await pool.delete_model("new:1b")  # from every server that holds it
        assert "new:1b" not in b.models

        steps = [step async for step in pool.pull_model("new:1b", server=b.url)]
        assert {step.server for step in steps} == {b.url}
        assert "new:1b" in b.models and "new:1b" not in a.models
        with pytest.raises(InvalidRequest):
            [step async for step in pool.pull_model("new:1b", server="http://elsewhere:1")]


async def test_servers_found_through_dns_each_take_their_share() -> None:
    first = FakeOllama([FakeModel(SHARED, reply=REPLY)], host="127.0.0.2")
    await first.__aenter__()
    port = int(first.url.rsplit(":", 1)[1])
    addresses = ["127.0.0.2", "127.0.0.3"]

    async def resolve(host: str, asked_port: int) -> list[str]:
        assert (host, asked_port) == ("ollama.internal", port)
        return list(addresses)

    try:
        async with FakeOllama(
            [FakeModel(SHARED, reply=REPLY)], host="127.0.0.3", port=port
        ) as second:
            url = f"http://ollama.internal:{port}"
            pool = OllamaPool([url], dns_discovery=True, resolver=resolve, resolve_every=0)
            try:
                (model,) = await pool.list_models()
                assert model.locations == (f"{url} (127.0.0.2)", f"{url} (127.0.0.3)")
                for _ in range(4):
                    assert (await collect(pool.chat(request())))[0] == REPLY
                assert (chat_calls(first), chat_calls(second)) == (2, 2)
                # The name now has one address (a pod went away): the other is dropped.
                addresses.remove("127.0.0.2")
                (model,) = await pool.list_models()
                assert model.locations == (f"{url} (127.0.0.3)",)
                await collect(pool.chat(request()))
                assert chat_calls(second) == 3
            finally:
                await pool.aclose()
    finally:
        await first.__aexit__(None, None, None)


async def test_embeddings_are_balanced_and_fail_over_too() -> None:
    embedder = FakeModel("nomic-embed-text:latest", capabilities=("embedding",))
    async with FakeOllama([embedder]) as a, FakeOllama([embedder]) as b:
        pool = OllamaPool([a.url, b.url], connect_timeout=2)
        try:
            await pool.list_models()
            for _ in range(2):
                result = await pool.embed(EmbedRequest(model=embedder.name, inputs=["x"]))
                assert len(result.vectors) == 1
            assert (len(a.calls("/api/embed")), len(b.calls("/api/embed"))) == (1, 1)
            await a.__aexit__(None, None, None)
            for _ in range(2):
                await pool.embed(EmbedRequest(model=embedder.name, inputs=["x"]))
            assert len(b.calls("/api/embed")) == 3
        finally:
            await pool.aclose()


async def test_a_model_pinned_to_a_down_server_is_still_tried_there() -> None:
    async with two_servers() as (a, _b, pool):
        a.fail_next(1, status=503, message="server busy")  # looks down for one call
        with pytest.raises(ProviderUnavailable):
            await collect(pool.chat(request(ONLY_A)))
        # Marked down, but it alone holds the model: the next call tries it again.
        assert (await collect(pool.chat(request(ONLY_A))))[0] == "from a"
