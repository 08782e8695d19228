"""The chat API: CRUD, listing and pagination, isolation, export/import and usage reports."""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.chat_support import MODEL, REPLY, chat_hub, fake, new_chat, send
from tests.fakes.ollama import FakeOllama
from tests.hub import Client, Hub

__all__ = ["chat_hub", "fake"]


async def test_create_get_change_delete(chat_hub: Hub) -> None:
    alice = await chat_hub.signup("alice@example.com")
    created = await alice.post(
        "/api/chats",
        {"title": "Plans", "model": MODEL, "system_prompt": "Terse.", "temperature": 0.5},
    )
    assert created.status == 201, created.text
    chat = created.body["chat"]
    assert chat["title"] == "Plans" and chat["temperature"] == 0.5 and chat["max_tokens"] is None
    assert chat["pinned"] is False and chat["archived"] is False

    got = await alice.get(f"/api/chats/{chat['id']}")
    assert got.status == 200 and got.body["chat"]["messages"] == []

    changed = await alice.patch(
        f"/api/chats/{chat['id']}",
        {"title": "Renamed", "pinned": True, "max_tokens": 256, "temperature": None},
    )
    assert changed.status == 200, changed.text
    body = changed.body["chat"]
    assert body["title"] == "Renamed" and body["pinned"] is True
    assert body["max_tokens"] == 256 and body["temperature"] is None
    assert body["updated_at"] == chat["updated_at"]  # a rename is not activity

    assert (await alice.patch(f"/api/chats/{chat['id']}", {"title": None})).status == 400
    assert (await alice.patch(f"/api/chats/{chat['id']}", {"title": ""})).status == 400
    assert (await alice.patch(f"/api/chats/{chat['id']}", {"temperature": 5})).status == 400
    unknown = await alice.patch(f"/api/chats/{chat['id']}", {"model": "nope-model"})
    assert unknown.status == 404 and unknown.error_code == "model_not_found"

    assert (await alice.delete(f"/api/chats/{chat['id']}")).status == 204
    assert (await alice.get(f"/api/chats/{chat['id']}")).status == 404
    assert (await alice.delete(f"/api/chats/{chat['id']}")).status == 404
    assert (await alice.get("/api/chats/not-a-uuid")).status == 404


async def test_other_users_chats_are_not_found(chat_hub: Hub) -> None:
    alice = await chat_hub.signup("alice@example.com")
    bob = await chat_hub.signup("bob@example.com")
    chat = await new_chat(alice, title="Secret")
    path = f"/api/chats/{chat['id']}"
    assert (await bob.get(path)).status == 404
    assert (await bob.patch(path, {"title": "mine"})).status == 404
    assert (await bob.delete(path)).status == 404
    assert (await bob.get(path + "/export")).status == 404
    assert (await bob.get("/api/chats")).body["data"] == []
    assert (await alice.get(path)).body["chat"]["title"] == "Secret"


async def _titles(client: Client, **params: Any) -> tuple[list[str], str | None]:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    listed = await client.get(f"/api/chats?{query}")
    assert listed.status == 200, listed.text
    return [c["title"] for c in listed.body["data"]], listed.body["next_cursor"]


async def test_list_order_archive_and_stable_pagination(chat_hub: Hub) -> None:
    alice = await chat_hub.signup("alice@example.com")
    ids = [(await new_chat(alice, title=f"chat {i:02}"))["id"] for i in range(25)]
    await alice.patch(f"/api/chats/{ids[3]}", {"pinned": True})
    await alice.patch(f"/api/chats/{ids[5]}", {"archived": True})

    first, cursor = await _titles(alice, limit=10)
    assert first[0] == "chat 03"  # pinned first, then newest first
    assert first[1:4] == ["chat 24", "chat 23", "chat 22"]
    # New chats arrive while paging: later pages neither repeat nor skip anything.
    for i in range(5):
        await new_chat(alice, title=f"late {i}")
    seen = list(first)
    while cursor:
        page, cursor = await _titles(alice, limit=10, cursor=cursor)
        seen += page
    expected = {f"chat {i:02}" for i in range(25)} - {"chat 05"}
    assert len(seen) == len(set(seen)) == 24 and set(seen) == expected

    archived, _ = await _titles(alice, archived="true")
    assert archived == ["chat 05"]
    bad = await alice.get("/api/chats?cursor=garbage")
    assert bad.status == 400 and bad.error_code == "invalid_cursor"
    assert (await alice.get("/api/chats?limit=0")).status == 400


def _normalised(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Chats with ids replaced by their position, so copies compare equal."""
    result = []
    for chat in document["chats"]:
        names = {m["id"]: f"m{i}" for i, m in enumerate(chat["messages"])}
        names[None] = None
        messages = [
            {**m, "id": names[m["id"]], "parent_id": names[m["parent_id"]]}
            for m in chat["messages"]
        ]
        result.append(
            {
                **chat,
                "id": None,
                "current_leaf_id": names[chat["current_leaf_id"]],
                "messages": messages,
            }
        )
    return result


async def test_export_import_round_trip(chat_hub: Hub, fake: FakeOllama) -> None:
    alice = await chat_hub.signup("alice@example.com")
    await alice.patch("/api/preferences", {"title_generation": {"enabled": False}})
    chat = await new_chat(alice, title="Round trip", system_prompt="Sys", max_tokens=50)
    first = await send(alice, chat["id"], 'question <one> & "two" ünïcødé')
    answer = first[0].data["assistant_message"]["id"]
    # The plain client reads the whole event stream: the regenerated answer is complete.
    await alice.post(f"/api/chats/{chat['id']}/messages/{answer}/regenerate", {})
    await alice.patch(f"/api/chats/{chat['id']}", {"pinned": True, "current_leaf_id": answer})

    exported = await alice.get(f"/api/chats/{chat['id']}/export")
    assert exported.status == 200
    assert "attachment" in exported.headers["Content-Disposition"]
    original = json.loads(exported.text)
    assert original["format"] == "llmhub.chats" and len(original["chats"][0]["messages"]) == 3

    imported = await alice.post("/api/chats/import", original)
    assert imported.status == 201, imported.text
    new_id = imported.body["data"][0]["id"]
    assert new_id != chat["id"]
    again = json.loads((await alice.get(f"/api/chats/{new_id}/export")).text)
    assert _normalised(again) == _normalised(original)

    # Another user can import the file too: a copy of their own, with fresh ids.
    bob = await chat_hub.signup("bob@example.com")
    copied = await bob.post("/api/chats/import", original)
    assert copied.status == 201
    copy = json.loads((await bob.get(f"/api/chats/{copied.body['data'][0]['id']}/export")).text)
    assert _normalised(copy) == _normalised(original)
    message_ids = {m["id"] for m in copy["chats"][0]["messages"]}
    assert not message_ids & {m["id"] for m in original["chats"][0]["messages"]}

    everything = json.loads((await alice.get("/api/chats/export")).text)
    assert len(everything["chats"]) == 2

    markdown = await alice.get(f"/api/chats/{chat['id']}/export?format=markdown")
    assert markdown.status == 200 and markdown.headers["Content-Type"].startswith("text/markdown")
    assert markdown.text.startswith("# Round trip\n")
    assert "## User" in markdown.text and REPLY in markdown.text and "## System" in markdown.text


async def test_import_rejects_broken_documents(chat_hub: Hub) -> None:
    alice = await chat_hub.signup("alice@example.com")
    now = "2025-01-01T00:00:00+00:00"
    message = {"id": str(uuid.uuid4()), "role": "user", "created_at": now, "updated_at": now}
    chat = {"id": str(uuid.uuid4()), "created_at": now, "updated_at": now, "messages": [message]}
    doc = {"format": "llmhub.chats", "version": 1, "chats": [chat]}
    assert (await alice.post("/api/chats/import", doc)).status == 201

    orphan = {**message, "id": str(uuid.uuid4()), "parent_id": str(uuid.uuid4())}
    broken = {**doc, "chats": [{**chat, "messages": [orphan]}]}
    for bad in (
        broken,
        {**doc, "version": 2},
        {**doc, "chats": [{**chat, "unknown": 1}]},
        {**doc, "chats": [{**chat, "current_leaf_id": str(uuid.uuid4())}]},
    ):
        refused = await alice.post("/api/chats/import", bad)
        assert refused.status == 400 and refused.error_code == "invalid_import", refused.text
    # Values PostgreSQL cannot store are refused up front, never a 500 half-way through.
    for bad in (
        {**doc, "chats": [{**chat, "title": "nul\u0000byte"}]},
        {**doc, "chats": [{**chat, "messages": [{**message, "content": "a\u0000b"}]}]},
        {**doc, "chats": [{**chat, "messages": [{**message, "input_tokens": 99999999999}]}]},
        {**doc, "chats": [{**chat, "created_at": "9999-12-31T23:59:59-23:59"}]},
    ):
        refused = await alice.post("/api/chats/import", bad)
        assert refused.status == 400, refused.text
    for raw in (b"not json", b'{"format": "llmhub.chats", "version": 1, "chats": [], "x": NaN}'):
        garbage = await alice.post(
            "/api/chats/import", data=raw, headers={"Content-Type": "application/json"}
        )
        assert garbage.status == 400
    assert len((await alice.get("/api/chats")).body["data"]) == 1


async def test_usage_own_and_for_admins(chat_hub: Hub, fake: FakeOllama) -> None:
    admin = await chat_hub.signup("admin@example.com")  # the first user is admin
    user = await chat_hub.signup("user@example.com")
    for client in (admin, user):
        await client.patch("/api/preferences", {"title_generation": {"enabled": False}})
        await send(client, (await new_chat(client))["id"], "hi")

    own = await user.get("/api/usage")
    assert own.status == 200
    assert own.body["totals"]["requests"] == 1
    row = own.body["data"][0]
    assert row["model"] == "llama3.2:1b" and row["provider"] == "ollama"
    assert row["input_tokens"] > 0 and row["output_tokens"] > 0
    assert (await user.get("/api/usage?all=true")).status == 403
    admin_id = (await admin.get("/api/auth/me")).body["user"]["id"]
    assert (await user.get(f"/api/usage?user_id={admin_id}")).status == 403

    everyone = await admin.get("/api/usage?all=true")
    assert everyone.status == 200
    assert sorted(r["email"] for r in everyone.body["data"]) == [
        "admin@example.com",
        "user@example.com",
    ]
    user_id = (await user.get("/api/auth/me")).body["user"]["id"]
    theirs = await admin.get(f"/api/usage?user_id={user_id}")
    assert theirs.body["totals"]["requests"] == 1
    assert (await admin.get("/api/usage?from=2025-02-01&to=2025-01-01")).status == 400


async def test_odd_query_parameters_are_400_not_500(chat_hub: Hub, fake: FakeOllama) -> None:
    import base64

    alice = await chat_hub.signup("alice@example.com")
    chat = await new_chat(alice)
    events = await send(alice, chat["id"], "hi")
    generation = events[0].data["generation_id"]
    # Not digits a client means as an event id: replay from the start, as for no id at all.
    for query in ("?last_event_id=%C2%B2", "?last_event_id=" + "9" * 5000):
        got = await alice.get(f"/api/generations/{generation}/stream{query}")
        assert got.status == 200, got.text
    got = await alice.get(
        f"/api/generations/{generation}/stream", headers={"Last-Event-ID": "9" * 5000}
    )
    assert got.status == 200, got.text
    assert (await alice.get("/api/search?q=a&limit=%C2%B2")).status == 400
    assert (await alice.get("/api/usage?from=9999-12-30&to=9999-12-31")).status == 400
    assert (await alice.get("/api/usage?to=0001-01-05")).status == 400
    for cursor in (
        [True, "2024-01-01T00:00:00+00:00", 5],
        [True, "2024-01-01T00:00:00+00:00", None],
        [True, "10000-01-01", str(uuid.uuid4())],
    ):
        raw = base64.urlsafe_b64encode(json.dumps(cursor).encode()).decode()
        got = await alice.get(f"/api/chats?cursor={raw}")
        assert got.status == 400, (cursor, got.status)
