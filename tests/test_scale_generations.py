"""Running answers seen from every replica: `llmhub serve` replicas on one PostgreSQL (on each
bus), a browser whose requests land on whichever replica the test says, no sticky sessions."""

from __future__ import annotations

import contextlib
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from tests.chat_support import Event, EventStream, db_row, eventually, open_stream, text_of
from tests.fakes.ollama import FakeModel, FakeOllama
from tests.pg import throwaway_database
from tests.redis_server import private_redis
from tests.replicas import Spread, replicas, spread
from tests.serve import ServeProcess

MODEL = "ollama/slow:1b"
WORDS = [f"w{i} " for i in range(12)]
ANSWER = "".join(WORDS)
HELD = 4  # the model pauses after this many pieces, until the test lets it go on


@dataclass
class Cluster:
    servers: list[ServeProcess]
    database_url: str
    fake: FakeOllama


@pytest.fixture(scope="module")
async def module_fake() -> AsyncIterator[FakeOllama]:
    async with FakeOllama([FakeModel("slow:1b", reply=ANSWER, chunks=WORDS)]) as server:
        yield server


@pytest.fixture
def fake(module_fake: FakeOllama) -> Iterator[FakeOllama]:
    module_fake.reset()
    module_fake.hold_after_chunks = HELD
    yield module_fake
    module_fake.release()  # nothing stays held for the next test
    module_fake.reset()


@contextlib.asynccontextmanager
async def cluster_of(
    count: int,
    bus: str,
    pg_admin_url: str,
    migrated_template: str,
    fake: FakeOllama,
    **env: str,
) -> AsyncIterator[Cluster]:
    template = migrated_template.rsplit("/", 1)[1].split("?", 1)[0]
    settings = {
        "LLMHUB_OLLAMA__URL": fake.url,
        "LLMHUB_BUS": bus,
        "LLMHUB_LIMITS__REQUESTS_PER_MINUTE": "0",
        **env,
    }
    async with (
        private_redis() as redis_url,
        throwaway_database(pg_admin_url, template=template) as database_url,
    ):
        if bus == "redis":
            settings["LLMHUB_REDIS_URL"] = redis_url
        async with replicas(count, database_url, settings) as running:
            yield Cluster(running, database_url, fake)


@pytest.fixture(scope="module", params=["postgres", "redis"])
async def three(
    request: pytest.FixtureRequest,
    pg_admin_url: str,
    migrated_template: str,
    module_fake: FakeOllama,
) -> AsyncIterator[Cluster]:
    async with cluster_of(3, request.param, pg_admin_url, migrated_template, module_fake) as c:
        yield c


@pytest.fixture
async def browser(three: Cluster) -> AsyncIterator[Spread]:
    async with spread(three.servers) as signed_in:
        await signed_in.signup(f"u{uuid.uuid4().hex[:8]}@example.com")
        yield signed_in


async def start_answer(browser: Spread, on: int = 0) -> tuple[str, str, EventStream]:
    """A new chat and a message sent through replica `on`: (chat id, answer id, its stream)."""
    created = await browser.at(on).post("/api/chats", {"model": MODEL})
    assert created.status == 201, created.text
    chat_id = created.body["chat"]["id"]
    stream = await open_stream(
        browser.at(on), "POST", f"/api/chats/{chat_id}/messages", {"content": "hi"}
    )
    start = await stream.next()
    assert start is not None and start.event == "start"
    return chat_id, start.data["generation_id"], stream


async def reattach(browser: Spread, on: int, answer_id: str, after: int = 0) -> EventStream:
    return await open_stream(
        browser.at(on),
        "GET",
        f"/api/generations/{answer_id}/stream",
        headers={"Last-Event-ID": str(after)} if after else None,
    )


async def until_deltas(stream: EventStream, count: int) -> list[Event]:
    seen: list[Event] = []

    def enough(event: Event) -> bool:
        seen.append(event)
        return sum(e.event == "delta" for e in seen) == count

    return await stream.until(enough)


async def test_reattach_on_other_replicas_gives_the_whole_answer_exactly_once(
    browser: Spread, fake: FakeOllama
) -> None:
    _, answer_id, first = await start_answer(browser, on=0)
    seen = await until_deltas(first, HELD)
    first.close()  # the browser reloads: its next request lands on replica 1
    last_id = int(seen[-1].id or 0)
    again = await reattach(browser, 1, answer_id, after=last_id)
    from_start = await reattach(browser, 2, answer_id)  # another tab, on replica 2
    fake.release()
    rest = await again.all()
    everything = await from_start.all()
    again.close()
    from_start.close()

    ids = [int(e.id or 0) for e in rest]
    assert ids == list(range(last_id + 1, last_id + 1 + len(rest)))  # no gap, no repeat
    assert text_of(seen) + text_of(rest) == ANSWER
    assert rest[-1].event == "end" and rest[-1].data["status"] == "complete"
    assert [int(e.id or 0) for e in everything] == list(range(1, len(everything) + 1))
    assert everything[0].event == "start" and text_of(everything) == ANSWER


async def test_a_stop_through_another_replica_stops_the_model_and_saves(
    three: Cluster, browser: Spread, fake: FakeOllama
) -> None:
    _, answer_id, stream = await start_answer(browser, on=0)
    await until_deltas(stream, HELD)
    stopped = await browser.at(2).post(f"/api/generations/{answer_id}/stop")
    assert stopped.status == 200, stopped.text
    message = stopped.body["message"]
    assert message["status"] == "stopped" and message["content"] == "".join(WORDS[:HELD])
    assert fake.disconnected.is_set()  # the upstream request was closed, not left running
    rest = await stream.all()
    stream.close()
    assert rest[-1].event == "end" and rest[-1].data["status"] == "stopped"
    row = await db_row(
        three.database_url, "SELECT status, content FROM messages WHERE id = $1",
        uuid.UUID(answer_id),
    )  # fmt: skip
    assert row is not None and (row["status"], row["content"]) == ("stopped", message["content"])


async def test_the_chat_view_of_a_running_answer_is_the_same_everywhere(
    browser: Spread, fake: FakeOllama
) -> None:
    chat_id, answer_id, stream = await start_answer(browser, on=1)
    await until_deltas(stream, HELD)

    async def partial_on_replica_2() -> dict[str, object] | None:
        chat = (await browser.at(2).get(f"/api/chats/{chat_id}")).body["chat"]
        answer = next(m for m in chat["messages"] if m["id"] == answer_id)
        return answer if answer["content"] == "".join(WORDS[:HELD]) else None

    answer = await eventually(partial_on_replica_2, what="the partial answer on replica 2")
    assert answer["status"] == "streaming"
    fake.release()
    await stream.all()
    stream.close()


async def test_deleting_a_chat_through_another_replica_stops_its_answer(
    browser: Spread, fake: FakeOllama
) -> None:
    chat_id, _, stream = await start_answer(browser, on=0)
    await until_deltas(stream, HELD)
    assert (await browser.at(1).delete(f"/api/chats/{chat_id}")).status == 204
    assert fake.disconnected.is_set()
    stream.close()


# -- the owner goes away ---------------------------------------------------------------------


@pytest.mark.parametrize("bus", ["postgres", "redis"])
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_clients_on_other_replicas_see_the_owner_s_answers_end(
    bus: str,
    how: signal.Signals,
    pg_admin_url: str,
    migrated_template: str,
    fake: FakeOllama,
) -> None:
    async with (
        cluster_of(
            2,
            bus,
            pg_admin_url,
            migrated_template,
            fake,
            LLMHUB_SHUTDOWN_TIMEOUT="1",
            LLMHUB_GENERATION_LEASE="2",
        ) as cluster,  # fmt: skip
        spread(cluster.servers) as browser,
    ):
        await browser.signup("owner-gone@example.com")
        _, answer_id, direct = await start_answer(browser, on=0)
        direct.close()
        relayed = await reattach(browser, 1, answer_id)
        seen = await until_deltas(relayed, HELD)
        cluster.servers[0].process.send_signal(how)  # the owner is stopped, or killed
        rest = await relayed.all()
        relayed.close()
        await cluster.servers[0].process.wait()

        end = rest[-1]
        assert end.event == "end" and end.data["status"] == "interrupted", rest
        told = text_of(seen) + text_of(rest)
        if how == signal.SIGKILL:  # no word from the owner: what the database holds
            snapshot = next(e for e in rest if e.event == "snapshot")
            told = snapshot.data["message"]["content"]
        assert told == "".join(WORDS[:HELD])
        row = await db_row(
            cluster.database_url, "SELECT status, content FROM messages WHERE id = $1",
            uuid.UUID(answer_id),
        )  # fmt: skip
        assert row is not None and (row["status"], row["content"]) == ("interrupted", told)
