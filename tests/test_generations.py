"""Generations through a real HTTP server against FakeOllama: stream, persist, disconnect,
reattach, stop, upstream failures, crash recovery, shutdown and titles."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest

from tests.chat_support import (
    MODEL,
    REPLY,
    chat_hub,
    chat_settings,
    db_row,
    eventually,
    fake,
    new_chat,
    open_stream,
    send,
    text_of,
)
from tests.fakes.ollama import FakeOllama
from tests.hub import Client, Hub, running_hub

__all__ = ["chat_hub", "fake"]


async def _chat_of(client, chat_id: str) -> dict:
    got = await client.get(f"/api/chats/{chat_id}")
    assert got.status == 200, got.text
    return got.body["chat"]


async def test_send_streams_and_persists(chat_hub: Hub, fake: FakeOllama) -> None:
    alice = await chat_hub.signup("alice@example.com")
    chat = await new_chat(alice, system_prompt="Be brief.", temperature=0.3, max_tokens=100)
    stream = await open_stream(
        alice, "POST", f"/api/chats/{chat['id']}/messages", {"content": "Hello there"}
    )
    assert stream.response.headers["Cache-Control"] == "no-cache"
    assert stream.response.headers["X-Accel-Buffering"] == "no"
    events = await stream.all()
    stream.close()

    assert [e.id for e in events] == [str(i) for i in range(1, len(events) + 1)]
    start, end = events[0], events[-1]
    assert start.event == "start" and end.event == "end"
    assert {e.event for e in events[1:-1]} == {"delta"}
    assert text_of(events) == REPLY
    user_msg, answer = start.data["user_message"], start.data["assistant_message"]
    assert user_msg["content"] == "Hello there" and user_msg["parent_id"] is None
    assert answer["status"] == "streaming" and answer["parent_id"] == user_msg["id"]
    assert start.data["generation_id"] == answer["id"]
    assert end.data["status"] == "complete" and end.data["stop_reason"] == "stop"
    assert end.data["error"] is None
    assert end.data["usage"]["exact"] is True and end.data["usage"]["output_tokens"] > 0
    assert end.data["ttft_ms"] is not None and end.data["duration_ms"] >= end.data["ttft_ms"]

    # What went upstream: system prompt, the message, the chat's options.
    sent = fake.calls("/api/chat")[0].body
    assert sent["model"] == "llama3.2:1b"
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello there"},
    ]
    assert sent["options"]["temperature"] == 0.3 and sent["options"]["num_predict"] == 100

    # The end event is sent after the final state is saved.
    saved = await _chat_of(alice, chat["id"])
    assert saved["current_leaf_id"] == answer["id"]
    assert [m["role"] for m in saved["messages"]] == ["user", "assistant"]
    assert saved["messages"][0] == user_msg  # the same shape, whether built in SQL or Python
    stored = saved["messages"][1]
    assert stored["content"] == REPLY and stored["status"] == "complete"
    assert stored["usage"] == end.data["usage"] and stored["model"] == MODEL
    usage = await alice.get("/api/usage")
    assert usage.status == 200
    chat_rows = [r for r in usage.body["data"] if r["model"] == "llama3.2:1b"]
    assert chat_rows and chat_rows[0]["requests"] >= 1


async def test_disconnect_does_not_stop_the_answer(chat_hub: Hub, fake: FakeOllama) -> None:
    fake.chunk_delay = 0.02
    alice = await chat_hub.signup("alice@example.com")
    chat = await new_chat(alice)
    stream = await open_stream(
        alice, "POST", f"/api/chats/{chat['id']}/messages", {"content": "hi"}
    )
    events = await stream.until(lambda e: e.event == "delta")
    stream.close()  # the browser goes away
    answer_id = events[0].data["assistant_message"]["id"]

    async def finished() -> dict | None:
        messages = (await _chat_of(alice, chat["id"]))["messages"]
        answer = next(m for m in messages if m["id"] == answer_id)
        return answer if answer["status"] != "streaming" else None

    answer = await eventually(finished, what="the answer to finish")
    assert answer["status"] == "complete" and answer["content"] == REPLY
    assert fake.disconnects == 0


async def test_reattach_replays_exactly_the_missed_events(chat_hub: Hub, fake: FakeOllama) -> None:
    fake.chunk_delay = 0.02
    alice = await chat_hub.signup("alice@example.com")
    chat = await new_chat(alice)
    stream = await open_stream(
        alice, "POST", f"/api/chats/{chat['id']}/messages", {"content": "hi"}
    )
    seen = await stream.until(lambda e: e.event == "delta" and int(e.id) >= 3)
    stream.close()
    generation = seen[0].data["generation_id"]

    again = await open_stream(
        alice,
        "GET",
        f"/api/generations/{generation}/stream",
        headers={"Last-Event-ID": seen[-1].id},
    )
    rest = await again.all()
    again.close()
    assert rest[0].id == str(int(seen[-1].id) + 1)
    combined = seen + rest
    assert [e.id for e in combined] == [str(i) for i in range(1, len(combined) + 1)]
    assert text_of(combined) == REPLY and combined[-1].event == "end"

    # After the end, a full replay is the same sequence, event for event.
    replay = await open_stream(alice, "GET", f"/api/generations/{generation}/stream")
    assert [(e.id, e.event, e.data) for e in await replay.all()] == [
        (e.id, e.event, e.data) for e in combined
    ]
    replay.close()
    # ?last_event_id= works too (for a first attach, where EventSource cannot set the header).
    tail = await open_stream(alice, "GET", f"/api/generations/{generation}/stream?last_event_id=3")
    assert [e.id for e in await tail.all()] == [e.id for e in combined[3:]]
    tail.close()

    # Another user cannot attach.
    bob = await chat_hub.signup("bob@example.com")
    assert (await bob.get(f"/api/generations/{generation}/stream")).status == 404


async def test_reattach_to_an_evicted_generation_gets_a_snapshot(
    chat_hub: Hub, fake: FakeOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmhub import generations

    alice = await chat_hub.signup("alice@example.com")
    chat = await new_chat(alice)
    events = await send(alice, chat["id"], "hi")
    generation = events[0].data["generation_id"]
    monkeypatch.setattr(generations, "RETAIN_FINISHED", 0.0)  # as if its retention had passed
    await _evicted(chat_hub, alice, generation)
    stream = await open_stream(alice, "GET", f"/api/generations/{generation}/stream")
    snapshot = await stream.all()
    stream.close()
    assert [e.event for e in snapshot] == ["snapshot", "end"]
    assert snapshot[0].data["message"]["content"] == REPLY
    assert snapshot[1].data["status"] == "complete"


async def test_stop_closes_upstream_and_keeps_the_partial(chat_hub: Hub, fake: FakeOllama) -> None:
    fake.script("llama3.2:1b", "one two three four", chunks=["one", " two", " three", " four"])
    fake.stall_after_chunks = 2
    alice = await chat_hub.signup("alice@example.com")
    chat = await new_chat(alice)
    stream = await open_stream(
        alice, "POST", f"/api/chats/{chat['id']}/messages", {"content": "hi"}
    )
    seen = await stream.until(lambda e: e.event == "delta" and e.data["text"] == " two")
    generation = seen[0].data["generation_id"]

    stopped = await alice.post(f"/api/generations/{generation}/stop")
    assert stopped.status == 200, stopped.text
    message = stopped.body["message"]
    assert message["status"] == "stopped" and message["content"] == "one two"
    assert message["stop_reason"] == "cancelled"
    await asyncio.wait_for(fake.disconnected.wait(), 5)  # the upstream request was closed

    rest = await stream.all()
    stream.close()
    assert rest[-1].event == "end" and rest[-1].data["status"] == "stopped"
    assert rest[-1].data["usage"]["exact"] is False  # estimated: the model never said
    # Stopping again is harmless; stopping someone else's is not found.
    assert (await alice.post(f"/api/generations/{generation}/stop")).status == 200
    bob = await chat_hub.signup("bob@example.com")
    assert (await bob.post(f"/api/generations/{generation}/stop")).status == 404


async def test_partial_content_reaches_the_database_while_streaming(
    chat_hub: Hub, fake: FakeOllama
) -> None:
    fake.script("llama3.2:1b", "one two three", chunks=["one", " two", " three"])
    fake.stall_after_chunks = 2
    alice = await chat_hub.signup("alice@example.com")
    chat = await new_chat(alice)
    path = f"/api/chats/{chat['id']}/messages"
    stream = await open_stream(alice, "POST", path, {"content": "hi"})
    seen = await stream.until(lambda e: e.event == "delta" and e.data["text"] == " two")
    answer_id = uuid.UUID(seen[0].data["generation_id"])
    url = chat_hub.app.state.settings.database_url
    query = "SELECT status, content FROM messages WHERE id = $1"

    async def flushed() -> bool:
        row = await db_row(url, query, answer_id)
        return row["content"] == "one two" and row["status"] == "streaming"

    await eventually(flushed, what="the partial answer in the database")
    await alice.post(f"/api/generations/{answer_id}/stop")
    stream.close()


async def test_upstream_breaks_mid_stream(chat_hub: Hub, fake: FakeOllama) -> None:
    fake.script("llama3.2:1b", "alpha beta gamma", chunks=["alpha", " beta", " gamma"])
    alice = await chat_hub.signup("alice@example.com")
    chat = await new_chat(alice)
    for knob in ("drop_after_chunks", "error_after_chunks"):
        setattr(fake, knob, 2)
        events = await send(alice, chat["id"], f"hi ({knob})")
        setattr(fake, knob, None)
        end = events[-1]
        assert end.event == "end" and end.data["status"] == "error", end
        assert end.data["error"]
        answer_id = end.data["message_id"]
        row = await db_row(
            chat_hub.app.state.settings.database_url,
            "SELECT status, content, error FROM messages WHERE id = $1",
            uuid.UUID(answer_id),
        )
        assert row["status"] == "error" and row["content"] == "alpha beta"
        assert row["error"] == end.data["error"]


async def test_upstream_fails_before_the_first_token(chat_hub: Hub, fake: FakeOllama) -> None:
    alice = await chat_hub.signup("alice@example.com")
    chat = await new_chat(alice)
    fake.fail_next(1, status=500, message="llama runner process has terminated")
    events = await send(alice, chat["id"], "hello?")
    assert [e.event for e in events] == ["start", "end"]
    assert events[-1].data["status"] == "error"
    assert "terminated" in events[-1].data["error"]
    saved = await _chat_of(alice, chat["id"])
    # The user's message was committed before the model call, and stays.
    assert [(m["role"], m["status"]) for m in saved["messages"]] == [
        ("user", "complete"),
        ("assistant", "error"),
    ]


async def test_crash_recovery_interrupts_orphans_only(
    database_url: str, data_dir: Path, fake: FakeOllama
) -> None:
    """At start, answers whose owner is gone are interrupted: no lease, a lapsed lease, or a
    dead process on this machine. A live owner's answers (another replica) are left alone."""
    from llmhub.ownership import machine_identity

    finished = await asyncio.create_subprocess_exec("true")
    await finished.wait()  # a pid on this machine that no longer runs
    conn = await asyncpg.connect(database_url)
    try:
        leases = "INSERT INTO generation_owners (key, host, pid, lease_seconds, renewed_at) "
        await conn.execute(leases + "VALUES (4242, 'elsewhere', 1, 30, now())")
        await conn.execute(leases + "VALUES (77, 'elsewhere', 1, 30, now() - interval '1 hour')")
        await conn.execute(
            leases + "VALUES (55, $1, $2, 3600, now())", machine_identity(), finished.pid
        )
        user = await conn.fetchval(
            "INSERT INTO users (email, password_hash) VALUES ('x@example.com', 'x') RETURNING id"
        )
        chat = await conn.fetchval("INSERT INTO chats (user_id) VALUES ($1) RETURNING id", user)
        insert = (
            "INSERT INTO messages (chat_id, user_id, role, content, status, generation_owner) "
            "VALUES ($1, $2, 'assistant', 'partial', 'streaming', $3) RETURNING id"
        )
        crashed = await conn.fetchval(insert, chat, user, 99)
        unowned = await conn.fetchval(insert, chat, user, None)
        lapsed = await conn.fetchval(insert, chat, user, 77)
        dead_neighbour = await conn.fetchval(insert, chat, user, 55)
        elsewhere = await conn.fetchval(insert, chat, user, 4242)
        async with running_hub(chat_settings(database_url, data_dir, fake.url)):
            rows = {
                r["id"]: r
                for r in await conn.fetch("SELECT id, status, content, error FROM messages")
            }
        assert rows[crashed]["status"] == "interrupted" and rows[crashed]["content"] == "partial"
        assert rows[crashed]["error"]
        for orphan in (unowned, lapsed, dead_neighbour):
            assert rows[orphan]["status"] == "interrupted"
        assert rows[elsewhere]["status"] == "streaming"
        owners = {r["key"] for r in await conn.fetch("SELECT key FROM generation_owners")}
        assert owners == {4242}  # lapsed and dead leases retired; ours released at shutdown
    finally:
        await conn.close()


async def test_shutdown_stops_and_saves_running_generations(
    database_url: str, data_dir: Path, fake: FakeOllama
) -> None:
    fake.script("llama3.2:1b", "one two three", chunks=["one", " two", " three"])
    fake.stall_after_chunks = 1
    settings = chat_settings(database_url, data_dir, fake.url, shutdown_timeout=0)
    async with running_hub(settings) as hub:
        alice = await hub.signup("alice@example.com")
        chat = await new_chat(alice)
        stream = await open_stream(
            alice, "POST", f"/api/chats/{chat['id']}/messages", {"content": "hi"}
        )
        seen = await stream.until(lambda e: e.event == "delta")
        stream.close()
        answer_id = uuid.UUID(seen[0].data["generation_id"])
    row = await db_row(
        database_url, "SELECT status, content, error FROM messages WHERE id = $1", answer_id
    )
    assert row["status"] == "interrupted" and row["content"] == "one" and row["error"]


async def test_branches_regenerate_and_edit(chat_hub: Hub, fake: FakeOllama) -> None:
    alice = await chat_hub.signup("alice@example.com")
    await alice.patch("/api/preferences", {"title_generation": {"enabled": False}})
    chat = await new_chat(alice)
    cid = chat["id"]
    fake.script("llama3.2:1b", "first answer")
    first = await send(alice, cid, "question one")
    q1 = first[0].data["user_message"]["id"]
    a1 = first[0].data["assistant_message"]["id"]

    fake.script("llama3.2:1b", "second answer")
    regen = await alice_stream(alice, f"/api/chats/{cid}/messages/{a1}/regenerate", {})
    a2 = regen[0].data["assistant_message"]["id"]
    assert regen[0].data["user_message"] is None
    assert regen[0].data["assistant_message"]["parent_id"] == q1

    fake.script("llama3.2:1b", "third answer")
    followup = await send(alice, cid, "question two")  # below a2, the current leaf
    q2 = followup[0].data["user_message"]["id"]
    assert followup[0].data["user_message"]["parent_id"] == a2
    history = fake.calls("/api/chat")[-1].body["messages"]
    assert [m["content"] for m in history] == ["question one", "second answer", "question two"]

    fake.script("llama3.2:1b", "fourth answer")
    edited = await send(alice, cid, "question one, edited", parent_id=None)
    q1b = edited[0].data["user_message"]["id"]
    a4 = edited[0].data["assistant_message"]["id"]

    saved = await _chat_of(alice, cid)
    by_id = {m["id"]: m for m in saved["messages"]}
    assert len(by_id) == 7  # q1, a1, a2, q2, a3, q1b, a4: every version kept
    assert by_id[a1]["parent_id"] == by_id[a2]["parent_id"] == q1
    assert by_id[q1]["parent_id"] is None and by_id[q1b]["parent_id"] is None
    assert by_id[q2]["parent_id"] == a2
    assert (by_id[a1]["content"], by_id[a2]["content"]) == ("first answer", "second answer")
    assert saved["current_leaf_id"] == a4

    # Navigate back to the first branch: the choice is stored.
    moved = await alice.patch(f"/api/chats/{cid}", {"current_leaf_id": a1})
    assert moved.status == 200 and moved.body["chat"]["current_leaf_id"] == a1
    assert (await _chat_of(alice, cid))["current_leaf_id"] == a1
    # A user message cannot hang below a user message.
    bad = await alice.post(f"/api/chats/{cid}/messages", {"content": "x", "parent_id": q1})
    assert bad.status == 400 and bad.error_code == "invalid_parent"


async def alice_stream(client, path: str, body: dict) -> list:
    stream = await open_stream(client, "POST", path, body)
    events = await stream.all()
    stream.close()
    return events


async def test_request_errors_are_json_and_commit_nothing(chat_hub: Hub, fake: FakeOllama) -> None:
    alice = await chat_hub.signup("alice@example.com")
    chat = await new_chat(alice)
    path = f"/api/chats/{chat['id']}/messages"

    unknown = await alice.post(path, {"content": "hi", "model": "no-such-model"})
    assert unknown.status == 404 and unknown.error_code == "model_not_found"
    not_json = await alice.post(path, data=b"{nope", headers={"Content-Type": "application/json"})
    assert not_json.status == 400 and not_json.error_code == "invalid_json"
    extra = await alice.post(path, {"content": "hi", "surprise": 1})
    assert extra.status == 400 and extra.error_code == "validation_error"
    missing = await alice.post(path, {})
    assert missing.status == 400 and missing.error_code == "validation_error"
    empty = await alice.post(path, {"content": "   "})
    assert empty.status == 400
    too_long = await alice.post(path, {"content": "x" * 100_001})
    assert too_long.status == 413 and too_long.error_code == "content_too_long"
    huge = await alice.post(path, {"content": "x" * (11 * 1024 * 1024)})
    assert huge.status == 413 and huge.error_code == "payload_too_large"
    bad_parent = await alice.post(path, {"content": "hi", "parent_id": str(uuid.uuid4())})
    assert bad_parent.status == 400 and bad_parent.error_code == "invalid_parent"
    nowhere = await alice.post(f"/api/chats/{uuid.uuid4()}/messages", {"content": "hi"})
    assert nowhere.status == 404
    no_model = await alice.post("/api/chats", {})
    no_model_send = await alice.post(
        f"/api/chats/{no_model.body['chat']['id']}/messages", {"content": "hi"}
    )
    assert no_model_send.status == 400 and no_model_send.error_code == "model_required"

    bob = await chat_hub.signup("bob@example.com")
    assert (await bob.post(path, {"content": "hi"})).status == 404
    # No session: 401; session without the CSRF token: 403.
    assert (await chat_hub.client().post(path, {"content": "hi"})).status == 401
    assert (await alice.post(path, {"content": "hi"}, csrf=False)).status == 403

    assert (await _chat_of(alice, chat["id"]))["messages"] == []
    assert fake.calls("/api/chat") == []


async def test_rate_limit_is_a_429_before_anything_is_committed(
    database_url: str, data_dir: Path, fake: FakeOllama
) -> None:
    settings = chat_settings(database_url, data_dir, fake.url, limits={"requests_per_minute": 1})
    async with running_hub(settings) as hub:
        alice = await hub.signup("alice@example.com")
        await alice.patch("/api/preferences", {"title_generation": {"enabled": False}})
        chat = await new_chat(alice)
        await send(alice, chat["id"], "one")
        limited = await alice.post(f"/api/chats/{chat['id']}/messages", {"content": "two"})
        assert limited.status == 429 and "Retry-After" in limited.headers
        saved = await _chat_of(alice, chat["id"])
        assert [m["content"] for m in saved["messages"] if m["role"] == "user"] == ["one"]


async def test_api_key_can_chat(chat_hub: Hub, fake: FakeOllama) -> None:
    alice = await chat_hub.signup("alice@example.com")
    key = await chat_hub.key_client(alice)
    chat = await new_chat(key)
    events = await send(key, chat["id"], "hi")
    assert events[-1].data["status"] == "complete"


async def test_title_after_the_first_answer(chat_hub: Hub, fake: FakeOllama) -> None:
    alice = await chat_hub.signup("alice@example.com")
    chat = await new_chat(alice)
    fake.script("llama3.2:1b", '"Foxes and dogs."\nmore text')
    await send(alice, chat["id"], "tell me about foxes")

    async def titled() -> str | None:
        title = (await _chat_of(alice, chat["id"]))["title"]
        return title if title != "New chat" else None

    assert await eventually(titled, what="a title") == "Foxes and dogs"
    title_call = fake.calls("/api/chat")[-1].body
    assert "tell me about foxes" in title_call["messages"][0]["content"]
    usage = await alice.get("/api/usage")
    assert usage.body["totals"]["requests"] == 2  # the answer and the title


async def test_title_failure_or_off_keeps_the_default(chat_hub: Hub, fake: FakeOllama) -> None:
    alice = await chat_hub.signup("alice@example.com")
    # Titles from a model the upstream does not have: the title call fails.
    missing = {"title_generation": {"enabled": True, "model": "ollama/missing:1b"}}
    assert (await alice.patch("/api/preferences", missing)).status == 200
    failing = await new_chat(alice)
    await send(alice, failing["id"], "hi")
    await eventually(lambda: _usage_rows(alice, 2), what="the failed title call to be recorded")
    assert fake.calls("/api/chat")[-1].body["model"] == "missing:1b"
    assert (await _chat_of(alice, failing["id"]))["title"] == "New chat"

    off = await alice.patch("/api/preferences", {"title_generation": {"enabled": False}})
    assert off.status == 200 and off.body["title_generation"]["enabled"] is False
    quiet = await new_chat(alice)
    calls = len(fake.calls("/api/chat"))
    await send(alice, quiet["id"], "hi")
    # Title tasks are spawned with the end event, before we read it: let them finish.
    await chat_hub.app.state.generations.wait_background("chat-title")
    assert len(fake.calls("/api/chat")) == calls + 1  # the answer only
    assert (await _chat_of(alice, quiet["id"]))["title"] == "New chat"


async def _usage_rows(client, n: int) -> bool:
    body = (await client.get("/api/usage")).body
    return body["totals"]["requests"] >= n


@pytest.mark.parametrize(
    ("raw", "title"),
    [
        ("Title: **Foxes** and `dogs`.", "Foxes and dogs"),
        ('<think>hmm</think>\n\n"Here is **bold** and code:"', "Here is bold and code"),
        ("# A heading\nsecond line", "A heading"),
    ],
)
def test_titles_are_plain_text(raw: str, title: str) -> None:
    from llmhub.generations import clean_title

    assert clean_title(raw) == title


async def test_unstorable_model_output_does_not_lose_the_answer(
    chat_hub: Hub, fake: FakeOllama
) -> None:
    """A NUL or a lone surrogate from the model (JSON can carry both) is replaced, not fatal:
    the answer is saved, never left `streaming` for good."""
    fake.script("llama3.2:1b", "a\x00b \ud800c", chunks=["a\x00b", " \ud800c"])
    alice = await chat_hub.signup("alice@example.com")
    chat = await new_chat(alice)
    events = await send(alice, chat["id"], "hi")
    assert events[-1].event == "end" and events[-1].data["status"] == "complete", events[-1]
    assert text_of(events) == "a\ufffdb \ufffdc"
    messages = (await _chat_of(alice, chat["id"]))["messages"]
    assert messages[-1]["status"] == "complete"
    assert messages[-1]["content"] == "a\ufffdb \ufffdc"


async def test_stop_after_the_final_event_keeps_the_answer_complete(
    chat_hub: Hub, fake: FakeOllama
) -> None:
    """A stop that lands while the provider drains its connection after the model's final
    event is too late: the whole answer arrived, so it is `complete`, not `stopped`."""
    fake.script("llama3.2:1b", "one two", chunks=["one", " two"])
    fake.content_on_done = True  # the last delta and the final event come in one line
    fake.eof_delay = 30  # the provider then waits (up to its drain timeout) for the body's end
    alice = await chat_hub.signup("alice@example.com")
    chat = await new_chat(alice)
    stream = await open_stream(
        alice, "POST", f"/api/chats/{chat['id']}/messages", {"content": "hi"}
    )
    seen = await stream.until(lambda e: e.event == "delta" and e.data["text"] == " two")
    generation = seen[0].data["generation_id"]
    stopped = await alice.post(f"/api/generations/{generation}/stop")
    assert stopped.status == 200, stopped.text
    message = stopped.body["message"]
    assert message["status"] == "complete" and message["stop_reason"] == "stop", message
    rest = await stream.all()
    stream.close()
    assert rest[-1].data["status"] == "complete"


async def test_finished_generations_are_pruned_without_new_launches(
    chat_hub: Hub, fake: FakeOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finished generations (with every frame) are dropped after the retention time even if
    no new answer is started: memory does not depend on traffic to be released."""
    from llmhub import generations

    monkeypatch.setattr(generations, "RETAIN_FINISHED", 0.0)
    alice = await chat_hub.signup("alice@example.com")
    chat = await new_chat(alice)
    events = await send(alice, chat["id"], "hi")
    await _evicted(chat_hub, alice, events[0].data["generation_id"])


async def _evicted(hub: Hub, client: Client, generation_id: str) -> None:
    """Waits until the hub no longer holds the finished generation in memory."""
    user_id = uuid.UUID((await client.get("/api/auth/me")).body["user"]["id"])
    manager = hub.app.state.generations

    async def gone() -> bool:
        return manager.get(uuid.UUID(generation_id), user_id) is None

    await eventually(gone, what="the finished generation to be pruned")
