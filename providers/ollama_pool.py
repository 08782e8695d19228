"""Several Ollama servers as one provider: `[ollama] urls`, or every address of one DNS name
(`[ollama] dns_discovery`, as Cloud Map and Kubernetes headless services give).

Routing: a call goes to the healthy servers that hold its model (by their last model list),
the least busy first (calls in flight from this replica), ties taken in turn. So a model on
one server alone is pinned there, and one on several is balanced. A server that cannot be
reached is marked down and the call moves on to the next one (nothing was generated yet); down
servers are skipped until a probe (`health()`, which the registry calls every few seconds)
finds them back. A model no server is known to hold (a fresh pull) is tried on every healthy
server. A stream that breaks mid-answer is not moved: its partial text is kept, as with one
server. Pulls go to every server unless one is named; deletes to every server holding the
model unless one is named. `list_models` says where each model lives (`ModelInfo.locations`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

import structlog
from yarl import URL

from .base import (
    ChatEvent,
    ChatRequest,
    EmbedRequest,
    EmbedResult,
    ModelInfo,
    Provider,
    ProviderHealth,
    PullProgress,
)
from .errors import InvalidRequest, ModelNotFound, ProviderError, ProviderUnavailable
from .ollama import LoadedModel, OllamaProvider

log = structlog.get_logger("llmhub.ollama_pool")

# host, port -> the addresses the name has now
Resolver = Callable[[str, int], Awaitable[list[str]]]
RESOLVE_EVERY = 30.0  # seconds between DNS look-ups (servers come and go with pods)


async def resolve_addresses(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


@dataclass(eq=False)
class Server:
    """One Ollama server and what this replica knows about it."""

    name: str  # shown to admins: the URL (no credentials), and the address when found by DNS
    provider: OllamaProvider
    up: bool = True  # until a call or a probe says otherwise
    detail: str | None = None
    in_flight: int = 0
    models: frozenset[str] = frozenset()
    listed: bool = False  # its model list has been read

    def holds(self, model: str) -> bool:
        return model in self.models or (":" not in model and f"{model}:latest" in self.models)


class OllamaPool(Provider):
    name: ClassVar[str] = "ollama"
    supports_pull: ClassVar[bool] = True

    def __init__(
        self,
        urls: Sequence[str],
        *,
        dns_discovery: bool = False,
        resolver: Resolver | None = None,
        call_timeout: float = 4.0,
        resolve_every: float = RESOLVE_EVERY,
        connect_timeout: float = 5.0,
        read_timeout: float = 300.0,
        keep_alive: str | None = None,
    ) -> None:
        if not urls:
            raise ValueError("an Ollama pool needs at least one URL")
        self._urls = list(urls)
        self._dns = dns_discovery
        self._resolve = resolver or resolve_addresses
        self._call_timeout = call_timeout
        self._resolve_every = resolve_every
        self._options: dict[str, Any] = {
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
            "keep_alive": keep_alive,
        }
        self._servers: dict[str, Server] = {}
        self._resolved_at = float("-inf")
        self._turn = 0
        if not dns_discovery:
            for url in self._urls:
                name = _public(url)
                self._servers[name] = Server(name, OllamaProvider(url, **self._options))

    @property
    def servers(self) -> list[Server]:
        return list(self._servers.values())

    # -- which servers there are ---------------------------------------------------------------

    async def _discover(self) -> None:
        """With DNS discovery: one server per address the names resolve to, kept up to date."""
        if not self._dns or time.monotonic() - self._resolved_at < self._resolve_every:
            return
        self._resolved_at = time.monotonic()
        found: dict[str, tuple[str, str]] = {}
        for url in self._urls:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            try:
                addresses = await self._resolve(parts.hostname or "", port)
            except OSError as exc:  # keep the servers we know until the name resolves again
                log.warning("cannot resolve Ollama servers", url=_public(url), error=str(exc))
                return
            for address in addresses:
                found[f"{_public(url)} ({address})"] = (url, address)
        for name, (url, address) in found.items():
            if name not in self._servers:
                provider = OllamaProvider(url, address=address, **self._options)
                self._servers[name] = Server(name, provider)
                log.info("Ollama server found", server=name)
        for name in [n for n in self._servers if n not in found]:
            gone = self._servers.pop(name)
            log.info("Ollama server gone", server=name)
            if gone.in_flight == 0:
                await gone.provider.aclose()
            else:  # its calls still read from it; close it once they are done
                asyncio.get_running_loop().call_later(600, _close_later, gone.provider)

    def _named(self, server: str) -> Server:
        for candidate in self._servers.values():
            if server in (candidate.name, candidate.name.split(" (")[0], _address(candidate)):
                return candidate
        names = ", ".join(self._servers) or "none"
        raise InvalidRequest(f"no Ollama server '{server}' (servers: {names})")

    # -- routing -------------------------------------------------------------------------------

    def route(self, model: str) -> list[Server]:
        """Servers to try for `model`, best first."""
        servers = self.servers
        holders = [s for s in servers if s.holds(model)]
        if holders:
            candidates = [s for s in holders if s.up] or holders  # all down: they may be back
        else:
            candidates = [s for s in servers if s.up] or servers
        self._turn += 1
        count = len(servers)
        order = {id(s): i for i, s in enumerate(servers)}
        return sorted(candidates, key=lambda s: (s.in_flight, (order[id(s)] - self._turn) % count))

    def _failed(self, server: Server, model: str, exc: ProviderError) -> None:
        if isinstance(exc, ModelNotFound):
            server.models = frozenset(m for m in server.models if not _same_model(m, model))
        elif server.up:
            log.warning("Ollama server is down", server=server.name, error=exc.message)
            server.up, server.detail = False, exc.message

    async def chat(self, request: ChatRequest) -> AsyncGenerator[ChatEvent, None]:
        failures: list[ProviderError] = []
        for server in self.route(request.model):
            server.in_flight += 1
            stream = server.provider.chat(request)
            try:
                try:
                    first = await anext(stream)
                except (ProviderUnavailable, ModelNotFound) as exc:
                    self._failed(server, request.model, exc)
                    failures.append(exc)
                    continue
                yield first
                async for event in stream:
                    yield event
                return
            finally:
                server.in_flight -= 1
                await stream.aclose()
        raise _all_failed(failures, request.model)

    async def embed(self, request: EmbedRequest) -> EmbedResult:
        failures: list[ProviderError] = []
        for server in self.route(request.model):
            server.in_flight += 1
            try:
                return await server.provider.embed(request)
            except (ProviderUnavailable, ModelNotFound) as exc:
                self._failed(server, request.model, exc)
                failures.append(exc)
            finally:
                server.in_flight -= 1
        raise _all_failed(failures, request.model)

    # -- catalog and health --------------------------------------------------------------------

    async def list_models(self) -> list[ModelInfo]:
        await self._discover()
        servers = self.servers
        lists = await asyncio.gather(*(self._list(s) for s in servers))
        if all(models is None for models in lists):
            raise ProviderUnavailable(_none_answered(servers))
        merged: dict[str, ModelInfo] = {}
        where: dict[str, list[str]] = {}
        for server, models in zip(servers, lists, strict=True):
            for model in models or ():
                merged.setdefault(model.id, model)
                where.setdefault(model.id, []).append(server.name)
        return [dataclasses.replace(m, locations=tuple(where[m.id])) for m in merged.values()]

    async def _list(self, server: Server) -> list[ModelInfo] | None:
        try:
            async with asyncio.timeout(self._call_timeout):
                models = await server.provider.list_models()
        except (ProviderError, TimeoutError) as exc:
            detail = exc.message if isinstance(exc, ProviderError) else "timed out"
            server.up, server.detail = False, detail
            return None
        server.models = frozenset(m.id for m in models)
        server.up, server.detail, server.listed = True, None, True
        return models

    async def health(self) -> ProviderHealth:
        """Probe every server: down ones come back here, and what they hold is read again."""
        await self._discover()
        servers = self.servers
        checks = await asyncio.gather(*(self._probe(s) for s in servers))
        up = [h for h in checks if h.ok]
        down = [f"{s.name}: {s.detail}" for s in servers if not s.up]
        detail = f"{len(up)} of {len(servers)} Ollama servers up"
        if down:
            detail += "; down: " + "; ".join(down)
        latency = min((h.latency_ms for h in up if h.latency_ms is not None), default=None)
        return ProviderHealth(ok=bool(up), latency_ms=latency, detail=detail)

    async def _probe(self, server: Server) -> ProviderHealth:
        health = await server.provider.health()
        if not health.ok:
            if server.up:
                log.warning("Ollama server is down", server=server.name, error=health.detail)
            server.up, server.detail = False, health.detail
            return health
        if not server.up or not server.listed:
            if not server.up:
                log.info("Ollama server is back", server=server.name)
            await self._list(server)  # it may hold other models than when it went away
        else:
            server.detail = None
        return health

    async def loaded_models(self) -> list[LoadedModel]:
        servers = [s for s in self.servers if s.up]
        found = await asyncio.gather(
            *(s.provider.loaded_models() for s in servers), return_exceptions=True
        )
        loaded: list[LoadedModel] = []
        for models in found:
            if isinstance(models, list):
                loaded.extend(models)
        if servers and not loaded and all(isinstance(m, BaseException) for m in found):
            raise ProviderUnavailable(_none_answered(servers))
        return loaded

    # -- model management ----------------------------------------------------------------------

    async def pull_model(
        self, name: str, server: str | None = None
    ) -> AsyncGenerator[PullProgress, None]:
        """Pull onto `server`, or onto every server (up ones; all if none is up). Progress of
        each is labelled with its server; a failure on any is raised once all are done."""
        targets = [self._named(server)] if server else [s for s in self.servers if s.up]
        targets = targets or self.servers
        queue: asyncio.Queue[PullProgress | None] = asyncio.Queue()
        failures: list[tuple[Server, ProviderError]] = []

        async def pull(target: Server) -> None:
            steps = target.provider.pull_model(name)
            try:
                async for step in steps:
                    await queue.put(dataclasses.replace(step, server=target.name))
                target.models = target.models | {name}
            except ProviderError as exc:
                failures.append((target, exc))
            finally:
                closing = getattr(steps, "aclose", None)  # the pull's upstream request
                if closing is not None:
                    await closing()
                await queue.put(None)

        tasks = [asyncio.create_task(pull(t), name="ollama-pull") for t in targets]
        try:
            running = len(tasks)
            while running:
                step = await queue.get()
                if step is None:
                    running -= 1
                else:
                    yield step
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if failures:
            where, exc = failures[0]
            raise type(exc)(f"{where.name}: {exc.message}", code=exc.code)

    async def delete_model(self, name: str, server: str | None = None) -> None:
        """Delete from `server`, or from every server holding the model."""
        if server:
            targets = [self._named(server)]
        else:
            targets = [s for s in self.servers if s.holds(name)] or self.servers
        outcomes = await asyncio.gather(
            *(t.provider.delete_model(name) for t in targets), return_exceptions=True
        )
        deleted = False
        for target, outcome in zip(targets, outcomes, strict=True):
            if outcome is None:
                deleted = True
                target.models = frozenset(m for m in target.models if not _same_model(m, name))
            elif not isinstance(outcome, ModelNotFound):
                raise outcome
        if not deleted:
            raise ModelNotFound(f"model '{name}' not found on any Ollama server")

    async def aclose(self) -> None:
        servers, self._servers = self.servers, {}
        await asyncio.gather(*(s.provider.aclose() for s in servers), return_exceptions=True)


def _public(url: str) -> str:
    return str(URL(url.rstrip("/")).with_user(None))


def _address(server: Server) -> str:
    return server.name.rpartition(" (")[2].rstrip(")") if " (" in server.name else ""


def _same_model(listed: str, asked: str) -> bool:
    return listed == asked or (":" not in asked and listed == f"{asked}:latest")


def _close_later(provider: OllamaProvider) -> None:
    with contextlib.suppress(RuntimeError):
        asyncio.get_running_loop().create_task(provider.aclose())


def _none_answered(servers: Sequence[Server]) -> str:
    details = "; ".join(f"{s.name}: {s.detail}" for s in servers)
    return f"no Ollama server answered ({details})"


def _all_failed(failures: list[ProviderError], model: str) -> ProviderError:
    if failures and all(isinstance(f, ModelNotFound) for f in failures):
        return ModelNotFound(f"model '{model}' not found on any Ollama server")
    details = "; ".join(f.message for f in failures if not isinstance(f, ModelNotFound))
    return ProviderUnavailable(f"no Ollama server could take the call: {details or 'none'}")
