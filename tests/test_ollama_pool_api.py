"""A hub configured with `[ollama] urls`: where models live in the admin catalog, pulls and
deletes per server, and chats that keep working when one server goes away."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from llmhub.config import ConfigError, load_settings
from providers.ollama_pool import OllamaPool
from providers.registry import build_registry
from tests.fakes.ollama import FakeModel, FakeOllama
from tests.hub import Client, Hub, hub_settings, started_hub

SHARED = "llama3.2:1b"
ONLY_B = "phi3:mini"
PULLABLE = "tinyllama:1b"


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeOllama, FakeOllama]]:
    pullable = [FakeModel(PULLABLE, size=4_000)]
    async with (
        FakeOllama([FakeModel(SHARED, reply="hello")], pullable=pullable) as a,
        FakeOllama([FakeModel(SHARED, reply="hello"), FakeModel(ONLY_B)], pullable=pullable) as b,
    ):
        yield a, b


@pytest.fixture
async def hub(
    database_url: str, data_dir: Path, fakes: tuple[FakeOllama, FakeOllama]
) -> AsyncIterator[Hub]:
    a, b = fakes
    settings = hub_settings(
        database_url, data_dir, ollama={"urls": [a.url, b.url]}, limits={"requests_per_minute": 0}
    )
    async with started_hub(settings) as running:
        yield running


async def test_admins_see_where_each_model_lives_and_users_do_not(
    hub: Hub, fakes: tuple[FakeOllama, FakeOllama]
) -> None:
    a, b = fakes
    admin = await hub.signup("admin@example.com")
    user = await hub.signup("user@example.com")
    listed = await admin.get("/api/admin/models")
    where = {m["id"]: m["locations"] for m in listed.body["data"]}
    assert where == {SHARED: [a.url, b.url], ONLY_B: [b.url]}
    for model in (await user.get("/api/models")).body["data"]:
        assert "locations" not in model  # internal addresses are for admins
    servers = (await admin.get("/api/admin/providers")).body["providers"]["ollama"]["servers"]
    assert [(s["name"], s["ok"]) for s in servers] == [(a.url, True), (b.url, True)]


async def pull(admin: Client, **body: str) -> list[tuple[str, dict[str, object]]]:
    response = await admin.post("/api/admin/models/pull", {"name": PULLABLE, **body})
    assert response.status == 200
    events = []
    for frame in response.text.strip().split("\n\n"):
        name, data = frame.split("\n")
        events.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return events


async def test_pull_and_delete_on_one_server_or_all(
    hub: Hub, fakes: tuple[FakeOllama, FakeOllama]
) -> None:
    a, b = fakes
    admin = await hub.signup("admin@example.com")
    events = await pull(admin, server=b.url)
    assert events[-1][0] == "done"
    assert {data["server"] for name, data in events if name == "progress"} == {b.url}
    assert (PULLABLE in a.models, PULLABLE in b.models) == (False, True)

    events = await pull(admin)  # every server
    assert {data["server"] for name, data in events if name == "progress"} == {a.url, b.url}
    listed = await admin.get("/api/admin/models")
    assert {m["id"]: m["locations"] for m in listed.body["data"]}[PULLABLE] == [a.url, b.url]

    deleted = await admin.delete(f"/api/admin/models/{PULLABLE}?server={a.url}")
    assert deleted.status == 200
    assert (PULLABLE in a.models, PULLABLE in b.models) == (False, True)
    assert (await admin.delete(f"/api/admin/models/{PULLABLE}")).status == 200
    assert PULLABLE not in b.models

    unknown = await admin.post(
        "/api/admin/models/pull", {"name": PULLABLE, "server": "http://10.9.9.9:11434"}
    )
    assert "event: error" in unknown.text and "no Ollama server" in unknown.text


async def test_chats_carry_on_when_a_server_goes_away(
    hub: Hub, fakes: tuple[FakeOllama, FakeOllama]
) -> None:
    a, b = fakes
    user = await hub.key_client(await hub.signup("admin@example.com"))
    body = {"model": SHARED, "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(2):
        answer = await user.post("/v1/chat/completions", body)
        assert answer.status == 200
    assert (len(a.calls("/api/chat")), len(b.calls("/api/chat"))) == (1, 1)
    await a.__aexit__(None, None, None)
    for _ in range(3):
        answer = await user.post("/v1/chat/completions", body)
        assert answer.status == 200, answer.text
        assert answer.body["choices"][0]["message"]["content"] == "hello"
    assert len(b.calls("/api/chat")) == 4


async def test_the_command_line_pulls_onto_one_server_and_lists_locations(
    fakes: tuple[FakeOllama, FakeOllama],
) -> None:
    a, b = fakes

    async def llmhub(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "llmhub", "models", *args),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "LLMHUB_OLLAMA__URLS": json.dumps([a.url, b.url])},
        )
        out, err = await process.communicate()
        return process.returncode or 0, out.decode(), err.decode()

    code, out, err = await llmhub("pull", PULLABLE, "--server", a.url)
    assert code == 0, err
    assert (PULLABLE in a.models, PULLABLE in b.models) == (True, False)
    assert f"{a.url}: success" in err.splitlines()
    code, out, err = await llmhub("list")
    assert code == 0, err
    lines = out.splitlines()
    assert any(line.endswith(f"{SHARED}  on {a.url}, {b.url}") for line in lines), out
    assert any(line.endswith(f"{PULLABLE}  on {a.url}") for line in lines), out


def test_url_and_urls_together_are_refused_and_urls_make_a_pool() -> None:
    with pytest.raises(ConfigError, match=r"^ollama: set url or urls, not both$"):
        load_settings(Path(os.devnull), {"ollama": {"url": "http://a:1", "urls": ["http://b:1"]}})
    settings = load_settings(Path(os.devnull), {"ollama": {"urls": ["http://a:1", "http://b:1"]}})
    registry = build_registry(settings)
    assert isinstance(registry.providers["ollama"], OllamaPool)
    single = build_registry(load_settings(Path(os.devnull), {"ollama": {"urls": ["http://a:1"]}}))
    assert not isinstance(single.providers["ollama"], OllamaPool)
