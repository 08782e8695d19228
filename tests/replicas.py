"""Several real `llmhub serve` replicas on one PostgreSQL, and a client that spreads its
requests over them as a round-robin load balancer without sticky sessions would."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from tests.hub import TEST_SECRET_KEY, Client
from tests.serve import ServeProcess, serve


@contextlib.asynccontextmanager
async def replicas(
    count: int, database_url: str, env: dict[str, str] | None = None
) -> AsyncIterator[list[ServeProcess]]:
    """`count` replicas sharing the database and the signing key, each with its own data dir."""
    data = Path(tempfile.mkdtemp(prefix="llmhub-test-replicas-"))
    shared = {"LLMHUB_SECRET_KEY": TEST_SECRET_KEY, **(env or {})}
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(shutil.rmtree, data, True)

        async def start(index: int) -> ServeProcess:
            return await stack.enter_async_context(
                serve(
                    "--database-url",
                    database_url,
                    "--data-dir",
                    str(data / f"replica{index}"),
                    env=shared,
                )
            )

        # One after the other: the first applies any migrations, the others find them done.
        first = await start(0)
        rest = await asyncio.gather(*(start(i) for i in range(1, count)))
        yield [first, *rest]


class Spread:
    """One browser (one cookie jar, one CSRF token) whose requests go to the replica asked for:
    `spread.at(1).get(...)`, or each to the next replica in turn with `spread.next()`."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.client = Client(urls[0], self.session)
        self._turn = 0

    def at(self, index: int) -> Client:
        self.client.base_url = self.urls[index % len(self.urls)]
        return self.client

    def next(self) -> Client:
        self._turn += 1
        return self.at(self._turn)

    async def signup(self, email: str, password: str = "correct horse battery", **kw: Any) -> None:
        response = await self.at(0).post(
            "/api/auth/signup", {"email": email, "password": password, **kw}
        )
        assert response.status in (201, 202), response.text

    async def login(self, email: str, password: str = "correct horse battery") -> None:
        response = await self.next().post("/api/auth/login", {"email": email, "password": password})
        assert response.status == 200, response.text

    async def close(self) -> None:
        await self.session.close()


@contextlib.asynccontextmanager
async def spread(servers: list[ServeProcess]) -> AsyncIterator[Spread]:
    browser = Spread([s.url for s in servers])
    try:
        yield browser
    finally:
        await browser.close()
