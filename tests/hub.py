"""The real app on a real socket in the test's event loop, and a browser-like client for it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import uvicorn
from starlette.applications import Starlette
from yarl import URL

from llmhub.app import create_app
from llmhub.config import Settings, load_settings

TEST_SECRET_KEY = "test-secret-key-" + "x" * 32


def hub_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    """Settings for an in-process hub on a test's own database (migrated already)."""
    return load_settings(
        Path(os.devnull),  # never a developer's ./llmhub.toml
        overrides={
            "database_url": database_url,
            "data_dir": data_dir,
            "secret_key": TEST_SECRET_KEY,
            "migrate_on_start": False,
            **overrides,
        },
    )


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: Any
    text: str

    @classmethod
    def parse(cls, status: int, raw: bytes, headers: Mapping[str, str] | None = None) -> Response:
        """A response read some other way (raw aiohttp, a stream): JSON body decoded if any."""
        text = raw.decode(errors="replace")
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        return cls(status, dict(headers or {}), body, text)

    @property
    def error_code(self) -> str | None:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return self.body["error"].get("code")
        return None


def assert_error(response: Response, status: int, code: str | None = None) -> dict[str, Any]:
    """`response` is one of our errors: `status`, and a JSON body {"error": {"message", "type",
    "code"}} with a message and a type (and `code`, when given). Returns the error object."""
    assert response.status == status, response.text
    assert isinstance(response.body, dict), response.text
    error = response.body.get("error")
    assert isinstance(error, dict) and set(error) == {"message", "type", "code"}, response.text
    assert error["message"] and error["type"], error
    if code is not None:
        assert error["code"] == code, error
    return error


@dataclass
class Client:
    """Keeps cookies like a browser and sends the CSRF token it was given, unless told not to."""

    base_url: str
    session: aiohttp.ClientSession
    csrf_token: str | None = None
    api_key: str | None = None
    default_headers: dict[str, str] = field(default_factory=dict)

    async def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        headers: dict[str, str] | None = None,
        csrf: bool = True,
        data: bytes | None = None,
    ) -> Response:
        sent = dict(self.default_headers)
        if csrf and self.csrf_token and method not in ("GET", "HEAD"):
            sent["X-CSRF-Token"] = self.csrf_token
        if self.api_key:
            sent["Authorization"] = f"Bearer {self.api_key}"
        sent.update(headers or {})
        async with self.session.request(
            method, self.base_url + path, json=json, data=data, headers=sent
        ) as response:
            text = await response.text()
            try:
                body = await response.json(content_type=None)
            except ValueError:
                body = None
            result = Response(response.status, dict(response.headers), body, text)
        if isinstance(result.body, dict) and "csrf_token" in result.body:
            self.csrf_token = result.body["csrf_token"]
        return result

    async def get(self, path: str, **kw: Any) -> Response:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, json: Any = None, **kw: Any) -> Response:
        return await self.request("POST", path, json, **kw)

    async def patch(self, path: str, json: Any = None, **kw: Any) -> Response:
        return await self.request("PATCH", path, json, **kw)

    async def put(self, path: str, json: Any = None, **kw: Any) -> Response:
        return await self.request("PUT", path, json, **kw)

    async def delete(self, path: str, **kw: Any) -> Response:
        return await self.request("DELETE", path, **kw)

    def set_cookie(self, name: str, value: str) -> None:
        self.session.cookie_jar.update_cookies({name: value}, response_url=URL(self.base_url))

    def cookie(self, name: str) -> str | None:
        for cookie in self.session.cookie_jar:
            if cookie.key == name:
                return cookie.value
        return None


@dataclass
class Hub:
    url: str
    app: Starlette
    _sessions: list[aiohttp.ClientSession] = field(default_factory=list)

    def client(self, **kw: Any) -> Client:
        session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self._sessions.append(session)
        return Client(self.url, session, **kw)

    async def signup(self, email: str, password: str = "correct horse battery") -> Client:
        client = self.client()
        response = await client.post("/api/auth/signup", {"email": email, "password": password})
        assert response.status in (201, 202), response.text
        return client

    async def key_client(self, owner: Client, **key_fields: Any) -> Client:
        created = await owner.post("/api/keys", {"name": "test", **key_fields})
        assert created.status == 201, created.text
        return self.client(api_key=created.body["key"])

    async def close(self) -> None:
        for session in self._sessions:
            await session.close()


@contextlib.asynccontextmanager
async def running_hub(settings: Settings) -> AsyncIterator[Hub]:
    app = create_app(settings)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan="on", log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(), name="test-hub")
    while not server.started:
        if task.done():
            task.result()  # startup failed: raise its error here
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    hub = Hub(f"http://127.0.0.1:{port}", app)
    try:
        yield hub
    finally:
        await hub.close()
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def started_hub(settings: Settings) -> AsyncIterator[Hub]:
    """`running_hub`, once its model catalog has loaded (unprefixed model ids resolve)."""
    async with running_hub(settings) as hub:
        assert await hub.app.state.registry.wait_first_refresh(5)
        yield hub
