"""Models for users (`/api/models`) and their management by admins (`/api/admin/models…`,
`/api/admin/providers`), end to end: the real app on a real socket in front of FakeOllama."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.fakes.ollama import FakeModel, FakeOllama
from tests.hub import Client, Hub
from tests.module_fixtures import module_hub_fixtures

CHAT = "llama3.2:1b"
OTHER = "qwen2.5:0.5b"
PULLABLE = "phi3:mini"


def fake_models() -> list[FakeModel]:
    return [
        FakeModel(CHAT, reply="Hi from llama", context_length=8192),
        FakeModel(OTHER, family="qwen2", capabilities=("completion", "vision")),
    ]


# One hub, database and fake Ollama for the module; a test that changes the catalog puts it back.
module_fake, fake, hub = module_hub_fixtures(
    fake_models,
    pullable=[FakeModel(PULLABLE, size=4_000)],
    limits={"requests_per_minute": 0},
)


@dataclass
class Users:
    admin: Client
    user: Client
    user_key: Client  # the plain user's API key


@pytest.fixture(scope="module")
async def users(hub: Hub) -> Users:
    admin = await hub.signup("admin@example.com")  # the first account is the admin
    user = await hub.signup("user@example.com")
    assert (await user.get("/api/auth/me")).body["user"]["role"] == "user"
    return Users(admin, user, await hub.key_client(user))


def ids(response: Any) -> list[str]:
    assert response.status == 200, response.text
    return [m["id"] for m in response.body["data"]]


def by_id(response: Any) -> dict[str, dict[str, Any]]:
    assert response.status == 200, response.text
    return {m["id"]: m for m in response.body["data"]}


def sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) pairs of an SSE body in which every event has both."""
    events = []
    for block in text.strip("\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        assert set(fields) == {"event", "data"}, block
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def chat(model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "Hi"}]}


@contextlib.asynccontextmanager
async def patched(admin: Client, model_id: str, **changes: Any) -> AsyncIterator[Any]:
    """Apply an admin change to a model, and undo it afterwards."""
    response = await admin.patch(f"/api/admin/models/{model_id}", changes)
    try:
        yield response
    finally:
        undo = await admin.patch(
            f"/api/admin/models/{model_id}", {"enabled": True, "display_name": ""}
        )
        assert undo.status == 200, undo.text


# -- listing ------------------------------------------------------------------------------------


async def test_users_see_enabled_models_with_provider_health(hub: Hub, users: Users) -> None:
    listed = await users.user.get("/api/models")
    models = by_id(listed)
    assert sorted(models) == [CHAT, OTHER]
    llama = models[CHAT]
    assert llama["provider"] == "ollama"
    assert llama["provider_ok"] is True
    assert llama["enabled"] is True
    assert llama["name"] == CHAT
    assert llama["context_length"] == 8192
    assert llama["family"] == "llama"
    assert llama["capabilities"]["chat"] is True
    assert llama["capabilities"]["vision"] is False
    assert models[OTHER]["capabilities"]["vision"] is True
    assert listed.body["providers"]["ollama"]["ok"] is True
    # API keys may read it too; anonymous callers may not.
    assert ids(await users.user_key.get("/api/models")) == [CHAT, OTHER]
    anonymous = await hub.client().get("/api/models")
    assert anonymous.status == 401


async def test_provider_outage_shows_in_the_listing(
    hub: Hub, users: Users, fake: FakeOllama
) -> None:
    registry = hub.app.state.registry
    fake.fail_next(status=503, message="server busy")
    await registry.refresh()
    try:
        listed = await users.user.get("/api/models")
        assert listed.status == 200
        # The last models seen stay listed, flagged: the UI can grey them out.
        assert listed.body["providers"]["ollama"]["ok"] is False
        assert all(m["provider_ok"] is False for m in listed.body["data"])
    finally:
        await registry.refresh()
    assert all(m["provider_ok"] for m in (await users.user.get("/api/models")).body["data"])


# -- admin choices ------------------------------------------------------------------------------


async def test_disabling_a_model_hides_it_everywhere_until_reenabled(
    hub: Hub, users: Users, fake: FakeOllama
) -> None:
    async with patched(users.admin, CHAT, enabled=False) as disabled:
        assert disabled.status == 200, disabled.text
        assert disabled.body["model"] == {
            "id": CHAT,
            "provider": "ollama",
            "enabled": False,
            "display_name": None,
        }
        assert ids(await users.user.get("/api/models")) == [OTHER]
        assert ids(await users.user_key.get("/v1/models")) == [OTHER]
        calls = len(fake.calls("/api/chat"))
        for model in (CHAT, f"ollama/{CHAT}"):
            refused = await users.user_key.post("/v1/chat/completions", chat(model))
            assert refused.status == 404, refused.text
            assert refused.error_code == "model_not_found"
        assert len(fake.calls("/api/chat")) == calls
        # Admins still see it, marked disabled, so they can switch it back on.
        admin_view = by_id(await users.admin.get("/api/admin/models"))
        assert admin_view[CHAT]["enabled"] is False
        assert admin_view[CHAT]["available"] is True

        enabled = await users.admin.patch(f"/api/admin/models/{CHAT}", {"enabled": True})
        assert enabled.status == 200 and enabled.body["model"]["enabled"] is True
        assert ids(await users.user.get("/api/models")) == [CHAT, OTHER]
        assert ids(await users.user_key.get("/v1/models")) == [CHAT, OTHER]
        answered = await users.user_key.post("/v1/chat/completions", chat(CHAT))
        assert answered.status == 200, answered.text
        assert answered.body["choices"][0]["message"]["content"] == "Hi from llama"


async def test_display_name_shows_and_can_be_cleared(hub: Hub, users: Users) -> None:
    async with patched(users.admin, OTHER, display_name="Qwen (small)") as renamed:
        assert renamed.status == 200, renamed.text
        assert renamed.body["model"]["display_name"] == "Qwen (small)"
        listed = by_id(await users.user.get("/api/models"))
        assert listed[OTHER]["name"] == "Qwen (small)"
        assert listed[OTHER]["enabled"] is True
        # Renaming is cosmetic: the id, which clients send, is unchanged.
        assert OTHER in ids(await users.user_key.get("/v1/models"))

        cleared = await users.admin.patch(f"/api/admin/models/{OTHER}", {"display_name": ""})
        assert cleared.body["model"]["display_name"] is None
        assert by_id(await users.user.get("/api/models"))[OTHER]["name"] == OTHER


async def test_model_admin_validation(hub: Hub, users: Users) -> None:
    unknown = await users.admin.patch("/api/admin/models/no-such-model", {"enabled": False})
    assert unknown.status == 404 and unknown.error_code == "model_not_found"
    bad = await users.admin.patch(f"/api/admin/models/{CHAT}", {"enabled": "perhaps"})
    assert bad.status == 400 and bad.error_code == "validation_error"
    extra = await users.admin.patch(f"/api/admin/models/{CHAT}", {"hidden": True})
    assert extra.status == 400 and extra.error_code == "validation_error"
    no_csrf = await users.admin.patch(f"/api/admin/models/{CHAT}", {"enabled": False}, csrf=False)
    assert no_csrf.status == 403 and no_csrf.error_code == "csrf_failed"
    assert CHAT in ids(await users.user.get("/api/models"))


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/admin/models", None),
        ("PATCH", f"/api/admin/models/{CHAT}", {"enabled": False}),
        ("POST", "/api/admin/models/pull", {"name": PULLABLE}),
        ("DELETE", f"/api/admin/models/{CHAT}", None),
        ("GET", "/api/admin/providers", None),
    ],
)
async def test_model_admin_is_for_admins_only(
    hub: Hub, users: Users, fake: FakeOllama, method: str, path: str, body: Any
) -> None:
    for client in (users.user, users.user_key):
        refused = await client.request(method, path, body)
        assert refused.status == 403, refused.text
        assert refused.error_code == "admin_required"
    anonymous = await hub.client().request(method, path, body)
    assert anonymous.status == 401
    assert fake.calls("/api/pull") == [] and fake.calls("/api/delete") == []
    assert ids(await users.user.get("/api/models")) == [CHAT, OTHER]


# -- pull and delete ----------------------------------------------------------------------------


@pytest.fixture
async def pull_undone(hub: Hub, fake: FakeOllama) -> AsyncIterator[None]:
    """Whatever a pull test leaves behind is gone afterwards, from Ollama and the catalog."""
    yield
    if fake.models.pop(PULLABLE, None) is not None:
        await hub.app.state.registry.refresh_provider("ollama")


async def test_pull_streams_progress_then_the_model_is_served_and_deleted(
    hub: Hub, users: Users, fake: FakeOllama, pull_undone: None
) -> None:
    pulled = await users.admin.post("/api/admin/models/pull", {"name": PULLABLE})
    assert pulled.status == 200, pulled.text
    assert pulled.headers["Content-Type"].split(";")[0] == "text/event-stream"
    events = sse(pulled.text)
    *progress, (last_name, last) = events
    assert (last_name, last) == ("done", {"model": PULLABLE})
    assert progress and all(name == "progress" for name, _ in progress)
    assert progress[0][1]["status"] == "pulling manifest"
    assert progress[-1][1]["status"] == "success"
    # Per layer (digest), the percentage only grows, and reaches 100.
    layers: dict[str, list[float]] = {}
    for _, step in progress:
        if step["digest"] and step["percent"] is not None:
            layers.setdefault(step["digest"], []).append(step["percent"])
            assert step["completed"] <= step["total"]
    assert len(layers) == 2
    for percents in layers.values():
        assert percents == sorted(percents) and percents[-1] == 100.0
    assert fake.calls("/api/pull")[0].body["model"] == PULLABLE

    # The catalog was refreshed as part of the pull: no waiting for the TTL.
    listed = by_id(await users.user.get("/api/models"))
    assert PULLABLE in listed and listed[PULLABLE]["provider"] == "ollama"
    assert PULLABLE in ids(await users.user_key.get("/v1/models"))
    answered = await users.user_key.post("/v1/chat/completions", chat(PULLABLE))
    assert answered.status == 200, answered.text

    deleted = await users.admin.delete(f"/api/admin/models/{PULLABLE}")
    assert deleted.status == 200, deleted.text
    assert fake.calls("/api/delete")[0].body["model"] == PULLABLE
    assert PULLABLE not in fake.models
    assert ids(await users.user.get("/api/models")) == [CHAT, OTHER]
    assert PULLABLE not in ids(await users.user_key.get("/v1/models"))
    gone = await users.user_key.post("/v1/chat/completions", chat(PULLABLE))
    assert gone.status == 404 and gone.error_code == "model_not_found"
    # Admins still see that it existed, no longer available.
    admin_view = by_id(await users.admin.get("/api/admin/models"))
    assert admin_view[PULLABLE]["available"] is False
    assert admin_view[CHAT]["available"] is True


async def test_pull_of_a_missing_model_ends_with_an_error_event(
    hub: Hub, users: Users, fake: FakeOllama
) -> None:
    pulled = await users.admin.post("/api/admin/models/pull", {"name": "no-such-model:7b"})
    assert pulled.status == 200, pulled.text
    events = sse(pulled.text)
    assert [name for name, _ in events] == ["progress", "error"]
    error = events[-1][1]
    assert error["code"] == "model_not_found"
    assert "file does not exist" in error["message"]
    assert ids(await users.user.get("/api/models")) == [CHAT, OTHER]


async def test_pull_when_ollama_fails_ends_with_an_error_event(
    hub: Hub, users: Users, fake: FakeOllama, pull_undone: None
) -> None:
    fake.fail_next(status=500, message="disk full")
    pulled = await users.admin.post("/api/admin/models/pull", {"name": PULLABLE})
    assert sse(pulled.text) == [
        (
            "error",
            {
                "message": "Ollama returned 500: disk full",
                "type": "upstream_error",
                "code": "upstream_error",
            },
        )
    ]

    fake.drop_after_chunks = 3  # Ollama goes away in the middle of the download
    pulled = await users.admin.post("/api/admin/models/pull", {"name": PULLABLE})
    names = [name for name, _ in sse(pulled.text)]
    assert names == ["progress"] * 3 + ["error"]


async def test_pull_and_delete_refusals(hub: Hub, users: Users, fake: FakeOllama) -> None:
    unknown = await users.admin.delete("/api/admin/models/no-such-model")
    assert unknown.status == 404 and unknown.error_code == "model_not_found"
    bad_provider = await users.admin.post(
        "/api/admin/models/pull", {"name": PULLABLE, "provider": "bedrock"}
    )
    assert bad_provider.status == 400 and bad_provider.error_code == "unsupported"
    empty = await users.admin.post("/api/admin/models/pull", {"name": ""})
    assert empty.status == 400 and empty.error_code == "validation_error"
    assert fake.calls("/api/pull") == []
    assert fake.calls("/api/delete") == []


# -- providers ---------------------------------------------------------------------------------


async def test_providers_show_health_and_loaded_models(hub: Hub, users: Users) -> None:
    answered = await users.user_key.post("/v1/chat/completions", chat(CHAT))
    assert answered.status == 200, answered.text
    shown = await users.admin.get("/api/admin/providers")
    assert shown.status == 200, shown.text
    ollama = shown.body["providers"]["ollama"]
    assert ollama["ok"] is True
    assert ollama["latency_ms"] is not None
    loaded = {m["name"]: m for m in ollama["loaded"]}
    assert CHAT in loaded
    assert loaded[CHAT]["size_vram"] > 0 and loaded[CHAT]["size_bytes"] > 0
    assert loaded[CHAT]["expires_at"]
