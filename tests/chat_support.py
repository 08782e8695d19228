"""Shared pieces for the chat tests: a hub wired to a FakeOllama, an SSE reader, DB polling.

Import the fixtures into a test module: `from tests.chat_support import fake, chat_hub`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import asyncpg
import pytest

from llmhub.config import Settings
from tests.fakes.ollama import FakeModel, FakeOllama
from tests.hub import Client, Hub, hub_settings, started_hub

MODEL = "ollama/llama3.2:1b"
REPLY = "The quick brown fox jumps over the lazy dog again and again"
T = TypeVar("T")


def chat_settings(database_url: str, data_dir: Path, ollama_url: str, **extra: Any) -> Settings:
    return hub_settings(database_url, data_dir, ollama={"url": ollama_url}, **extra)


@pytest.fixture
async def fake() -> AsyncIterator[FakeOllama]:
    async with FakeOllama([FakeModel("llama3.2:1b", reply=REPLY)]) as server:
        yield server


@pytest.fixture
async def chat_hub(database_url: str, data_dir: Path, fake: FakeOllama) -> AsyncIterator[Hub]:
    async with started_hub(chat_settings(database_url, data_dir, fake.url)) as hub:
        yield hub


@dataclass
class Event:
    id: str | None
    event: str
    data: Any


class EventStream:
    """Reads Server-Sent Events from an open aiohttp response, one event at a time."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self._buffer = b""
        self.comments = 0

    async def next(self) -> Event | None:
        while True:
            frame, sep, rest = self._buffer.partition(b"\n\n")
            if sep:
                self._buffer = rest
                event = self._parse(frame.decode())
                if event is not None:
                    return event
                continue
            chunk = await self.response.content.readany()
            if not chunk:
                return None
            self._buffer += chunk

    def _parse(self, frame: str) -> Event | None:
        fields: dict[str, str] = {}
        for line in frame.split("\n"):
            if line.startswith(":"):
                self.comments += 1
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if "event" not in fields:
            return None
        return Event(fields.get("id"), fields["event"], json.loads(fields.get("data", "null")))

    async def all(self) -> list[Event]:
        events = []
        while (event := await self.next()) is not None:
            events.append(event)
        return events

    async def until(self, predicate: Callable[[Event], bool]) -> list[Event]:
        events = []
        while (event := await self.next()) is not None:
            events.append(event)
            if predicate(event):
                return events
        raise AssertionError(f"stream ended before the awaited event: {events}")

    def close(self) -> None:
        self.response.close()


async def open_stream(
    client: Client,
    method: str,
    path: str,
    json_body: Any = None,
    headers: dict[str, str] | None = None,
) -> EventStream:
    sent = dict(headers or {})
    if client.csrf_token and method != "GET":
        sent["X-CSRF-Token"] = client.csrf_token
    if client.api_key:
        sent["Authorization"] = f"Bearer {client.api_key}"
    response = await client.session.request(
        method, client.base_url + path, json=json_body, headers=sent
    )
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return EventStream(response)


async def new_chat(client: Client, **fields: Any) -> dict[str, Any]:
    created = await client.post("/api/chats", {"model": MODEL, **fields})
    assert created.status == 201, created.text
    return created.body["chat"]


async def send(client: Client, chat_id: str, content: str, **fields: Any) -> list[Event]:
    """Send a message and read its whole answer stream."""
    stream = await open_stream(
        client, "POST", f"/api/chats/{chat_id}/messages", {"content": content, **fields}
    )
    events = await stream.all()
    stream.close()
    return events


def text_of(events: list[Event]) -> str:
    return "".join(e.data["text"] for e in events if e.event == "delta")


async def eventually(
    check: Callable[[], Awaitable[T | None]], timeout: float = 30.0, what: str = "condition"
) -> T:
    """Poll `check` until it returns something truthy (for state reached in the background).
    `timeout` only bounds how long a failing test takes: generous, as a loaded machine needs."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def db_row(database_url: str, query: str, *args: Any) -> asyncpg.Record | None:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchrow(query, *args)
    finally:
        await conn.close()
