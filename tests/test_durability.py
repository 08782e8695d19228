"""What a client was told is what the database holds, whatever PostgreSQL does: the final save
is retried and, while the database is away, kept and reported as pending; the ownership of
running answers survives a database restart. Each test runs its own PostgreSQL to stop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from llmhub import generations
from llmhub.repo import owners
from tests.chat_support import (
    EventStream,
    chat_settings,
    eventually,
    new_chat,
    open_stream,
    text_of,
)
from tests.fakes.ollama import FakeModel, FakeOllama
from tests.hub import Hub, started_hub
from tests.private_pg import PrivatePostgres, private_postgres
from tests.serve import serve

WORDS = ["one", " two", " three", " four"]


@pytest.fixture
async def pg() -> AsyncIterator[PrivatePostgres]:
    async with private_postgres() as server:
        yield server


@pytest.fixture
async def held() -> AsyncIterator[FakeOllama]:
    """A model that pauses after two words until released."""
    async with FakeOllama([FakeModel("llama3.2:1b", reply="".join(WORDS), chunks=WORDS)]) as fake:
        fake.hold_after_chunks = 2
        yield fake


@pytest.fixture
async def hub(pg: PrivatePostgres, held: FakeOllama, data_dir: Path) -> AsyncIterator[Hub]:
    settings = chat_settings(pg.url, data_dir, held.url, generation_lease=3)
    async with started_hub(settings) as running:
        yield running


async def _message(url: str, message_id: uuid.UUID) -> asyncpg.Record:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT status, content, generation_owner FROM messages WHERE id = $1", message_id
        )
    finally:
        await conn.close()
    assert row is not None
    return row


async def _start_answer(hub: Hub, held: FakeOllama):  # type: ignore[no-untyped-def]
    alice = await hub.signup("alice@example.com")
    await alice.patch("/api/preferences", {"title_generation": {"enabled": False}})
    chat = await new_chat(alice)
    stream = await open_stream(
        alice, "POST", f"/api/chats/{chat['id']}/messages", {"content": "count"}
    )
    seen = await stream.until(lambda e: e.event == "delta" and e.data["text"] == " two")
    await held.holding.wait()
    return alice, stream, seen, uuid.UUID(seen[0].data["generation_id"])


async def test_end_is_sent_only_once_the_final_state_is_stored(
    hub: Hub, held: FakeOllama, pg: PrivatePostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL goes away as the answer finishes: the client hears `pending`, not `end`, and
    when the database is back the answer it saw is the one stored, then `end` follows."""
    monkeypatch.setattr(generations, "SAVE_RETRY_WINDOW", 0.3)
    _, stream, seen, answer_id = await _start_answer(hub, held)

    await pg.stop()
    held.release()  # the model finishes while the database is down
    rest = await stream.until(lambda e: e.event in ("pending", "end"))
    assert rest[-1].event == "pending", rest[-1]
    assert rest[-1].data["status"] == "complete"

    await pg.start()
    rest += await stream.until(lambda e: e.event == "end")
    # The end event means stored: read the row the moment it arrives.
    row = await _message(pg.url, answer_id)
    stream.close()
    told = text_of(seen + rest)
    assert told == "".join(WORDS)
    assert (row["status"], row["content"]) == ("complete", told)
    assert rest[-1].data["status"] == "complete"


async def test_a_short_outage_is_ridden_out_by_retries(
    hub: Hub, held: FakeOllama, pg: PrivatePostgres
) -> None:
    _, stream, seen, answer_id = await _start_answer(hub, held)
    await pg.stop()
    held.release()
    await pg.start()  # well within the retry window
    rest = await stream.until(lambda e: e.event == "end")
    row = await _message(pg.url, answer_id)
    stream.close()
    assert "pending" not in [e.event for e in rest]
    assert (row["status"], row["content"]) == ("complete", text_of(seen + rest))


async def test_running_answers_keep_their_owner_across_a_database_restart(
    hub: Hub, held: FakeOllama, pg: PrivatePostgres
) -> None:
    """A restart ends every connection; a sweep on any replica right after it must not take the
    live answer for an orphan, and its partial saves go on."""
    _, stream, seen, answer_id = await _start_answer(hub, held)
    await eventually(lambda: _has_content(pg.url, answer_id, "one two"), what="the partial save")
    await pg.stop()
    await pg.start()

    conn = await asyncpg.connect(pg.url)  # another replica's sweep, the moment it is back
    try:
        assert await owners.interrupt_orphans(conn, "gone") == 0
    finally:
        await conn.close()
    assert await hub.app.state.generations.sweep() == 0
    row = await _message(pg.url, answer_id)
    assert row["status"] == "streaming"

    held.release()
    rest = await stream.until(lambda e: e.event == "end")
    stream.close()
    row = await _message(pg.url, answer_id)
    assert (row["status"], row["content"]) == ("complete", text_of(seen + rest))


async def test_an_owner_swept_while_away_reclaims_its_answers(
    hub: Hub, held: FakeOllama, pg: PrivatePostgres
) -> None:
    """Its lease ran out (as if cut off for longer than the lease) and a sweep interrupted its
    answer: on its next renewal the owner puts the answer back to `streaming`, and the final
    state is the whole answer."""
    _, stream, seen, answer_id = await _start_answer(hub, held)
    conn = await asyncpg.connect(pg.url)
    try:
        async with conn.transaction():  # the lease lapses and a sweep runs, at once
            await conn.execute("UPDATE generation_owners SET lease_seconds = 0.001")
            assert await owners.interrupt_orphans(conn, "gone") == 1
        assert (await _message(pg.url, answer_id))["status"] == "interrupted"
    finally:
        await conn.close()

    async def reclaimed() -> bool:
        row = await _message(pg.url, answer_id)
        return row["status"] == "streaming" and row["generation_owner"] is not None

    await eventually(reclaimed, timeout=10, what="the owner to reclaim its answer")
    held.release()
    rest = await stream.until(lambda e: e.event == "end")
    stream.close()
    row = await _message(pg.url, answer_id)
    assert (row["status"], row["content"]) == ("complete", text_of(seen + rest))


async def _has_content(url: str, message_id: uuid.UUID, content: str) -> bool:
    return (await _message(url, message_id))["content"] == content


async def test_stop_during_an_outage_is_a_clear_error_not_a_hang(
    hub: Hub, held: FakeOllama, pg: PrivatePostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(generations, "SAVE_RETRY_WINDOW", 0.3)
    alice, stream, _, answer_id = await _start_answer(hub, held)
    await pg.stop()
    stopped = await alice.post(f"/api/generations/{answer_id}/stop")
    assert stopped.status == 503, stopped.text
    await pg.start()
    rest = await stream.until(lambda e: e.event == "end")
    stream.close()
    row = await _message(pg.url, answer_id)
    assert rest[-1].data["status"] == row["status"] == "stopped"
    assert row["content"] == "one two"


async def test_sigterm_past_the_window_still_sends_end(database_url: str, data_dir: Path) -> None:
    """An answer longer than `shutdown_timeout` is stopped at the window's end and saved; its
    `end` event reaches the client even when that save is slow, because the server keeps the
    connection open past the window for it (it used to cut it at the same moment)."""
    words = [f"w{i} " for i in range(400)]
    async with FakeOllama([FakeModel("slow:1b", reply="".join(words), chunks=words)]) as fake:
        fake.chunk_delay = 0.05
        env = {"LLMHUB_OLLAMA__URL": fake.url, "LLMHUB_SHUTDOWN_TIMEOUT": "1"}
        async with (
            serve("--database-url", database_url, "--data-dir", str(data_dir), env=env) as server,
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
        ):
            async with http.post(
                f"{server.url}/api/auth/signup",
                json={"email": "a@example.com", "password": "long enough password"},
            ) as response:
                headers = {"X-CSRF-Token": (await response.json())["csrf_token"]}
            async with http.post(
                f"{server.url}/api/chats", json={"model": "ollama/slow:1b"}, headers=headers
            ) as response:
                chat_id = (await response.json())["chat"]["id"]
            async with http.post(
                f"{server.url}/api/chats/{chat_id}/messages",
                json={"content": "hi"},
                headers=headers,
            ) as response:
                stream = EventStream(response)
                seen = await stream.until(lambda e: e.event == "delta")
                answer_id = uuid.UUID(seen[0].data["generation_id"])
                conn = await asyncpg.connect(database_url)
                try:
                    async with conn.transaction():  # the database is slow to take the save
                        await conn.execute(
                            "SELECT 1 FROM messages WHERE id = $1 FOR UPDATE", answer_id
                        )
                        server.process.send_signal(signal.SIGTERM)
                        await eventually(
                            lambda: _final_save_waiting(database_url), timeout=30,
                            what="the final save to wait on the row",
                        )  # fmt: skip
                        # Hold it a while past the window: long enough for a cut to show.
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(2):
                                while (event := await stream.next()) is not None:
                                    seen.append(event)
                finally:
                    await conn.close()
                seen += await stream.all()
            assert await server.stop() == 0
    assert seen[-1].event == "end", seen[-3:]
    assert seen[-1].data["status"] == "interrupted"
    row = await _message(database_url, answer_id)
    assert (row["status"], row["content"]) == ("interrupted", text_of(seen))


async def _final_save_waiting(url: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        return bool(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE 'UPDATE messages SET status = %'"
            )
        )
    finally:
        await conn.close()
