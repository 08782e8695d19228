"""Mode-based provider sets, the merged catalog, and routing a model id to its provider."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from llmhub.config import load_settings
from providers.base import (
    ChatEvent,
    ChatRequest,
    EmbedRequest,
    EmbedResult,
    ModelInfo,
    Provider,
    ProviderHealth,
)
from providers.errors import ModelNotFound
from providers.registry import Registry, build_registry
from tests.fakes.ollama import FakeModel, FakeOllama


class StubProvider(Provider):
    """A provider whose listing we control: instant, failing, or hanging until released."""

    def __init__(self, name: str, models: list[str], *, hang: bool = False, fail: bool = False):
        self.name = name  # type: ignore[misc]
        self.model_ids = models
        self.hang = hang
        self.fail = fail
        self.release = asyncio.Event()
        self.listed = 0
        self.cancelled = 0  # listings given up on while they hung

    async def list_models(self) -> list[ModelInfo]:
        self.listed += 1
        if self.hang:
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        if self.fail:
            raise ConnectionError(f"{self.name} is down")
        return [ModelInfo(m, self.name, m) for m in self.model_ids]

    async def chat(self, request: ChatRequest) -> AsyncIterator[ChatEvent]:  # pragma: no cover
        raise NotImplementedError
        yield

    async def embed(self, request: EmbedRequest) -> EmbedResult:  # pragma: no cover
        raise NotImplementedError

    async def health(self) -> ProviderHealth:  # pragma: no cover
        return ProviderHealth(ok=True)

    async def aclose(self) -> None:
        self.release.set()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"mode": "local"}, ["ollama"]),
        ({"mode": "hybrid"}, ["bedrock", "ollama"]),
        ({"mode": "aws", "database_url": "postgresql://db/x", "secret_key": "k" * 40}, ["bedrock"]),
        (
            {
                "mode": "aws",
                "database_url": "postgresql://db/x",
                "secret_key": "k" * 40,
                "ollama": {"url": "http://ollama.internal:11434"},
            },
            ["bedrock", "ollama"],
        ),
    ],
)
async def test_modes_choose_providers(overrides: dict[str, object], expected: list[str]) -> None:
    registry = build_registry(load_settings(overrides=overrides))
    try:
        assert sorted(registry.providers) == expected
    finally:
        await registry.aclose()


def test_local_mode_never_imports_bedrock() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from llmhub.config import load_settings; "
        "from providers.registry import build_registry; "
        "build_registry(load_settings()); "
        "print('aioboto3' in sys.modules, 'providers.bedrock' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False False", result.stderr


async def test_merged_catalog_routes_ids_and_prefixes() -> None:
    ollama = StubProvider("ollama", ["llama3.2:1b", "qwen3:4b"])
    bedrock = StubProvider("bedrock", ["anthropic.claude-3-5-haiku-20241022-v1:0"])
    registry = Registry({"ollama": ollama, "bedrock": bedrock})
    await registry.refresh()
    assert {m.id for m in registry.models()} == {
        "llama3.2:1b",
        "qwen3:4b",
        "anthropic.claude-3-5-haiku-20241022-v1:0",
    }
    assert registry.resolve("qwen3:4b") == (ollama, "qwen3:4b")
    assert registry.resolve("ollama/qwen3:4b") == (ollama, "qwen3:4b")
    assert registry.resolve("bedrock/anthropic.claude-3-5-haiku-20241022-v1:0") == (
        bedrock,
        "anthropic.claude-3-5-haiku-20241022-v1:0",
    )
    # A prefix routes even before the catalog knows the model (say, right after a pull).
    assert registry.resolve("ollama/just-pulled:7b") == (ollama, "just-pulled:7b")


async def test_unknown_model_names_close_matches() -> None:
    registry = Registry({"ollama": StubProvider("ollama", ["llama3.2:1b", "llama3.2:3b"])})
    await registry.refresh()
    with pytest.raises(ModelNotFound, match=r"'llama3.2:2b' not found; did you mean llama3\.2"):
        registry.resolve("llama3.2:2b")
    with pytest.raises(ModelNotFound) as info:
        registry.resolve("totally-different")
    assert "did you mean" not in info.value.message


async def test_a_hanging_provider_does_not_delay_the_others() -> None:
    fast = StubProvider("ollama", ["llama3.2:1b"])
    stuck = StubProvider("bedrock", ["anthropic.claude"], hang=True)
    registry = Registry({"ollama": fast, "bedrock": stuck}, call_timeout=0.3)
    await registry.refresh()  # `stuck` never answers: this returns only through the timeout
    assert (stuck.listed, stuck.cancelled) == (1, 1)  # the hung call was given up on
    assert [m.id for m in registry.models()] == ["llama3.2:1b"]
    health = registry.health()
    assert health["ollama"].ok and not health["bedrock"].ok
    assert health["bedrock"].detail == "timed out"
    await registry.aclose()


async def test_a_failed_refresh_keeps_the_last_good_catalog() -> None:
    provider = StubProvider("ollama", ["llama3.2:1b"])
    registry = Registry({"ollama": provider})
    await registry.refresh()
    provider.fail = True
    await registry.refresh()
    assert [m.id for m in registry.models()] == ["llama3.2:1b"]
    assert registry.health()["ollama"].ok is False
    assert "down" in (registry.health()["ollama"].detail or "")


async def test_background_refresh_follows_the_ttl() -> None:
    provider = StubProvider("ollama", ["a:1b"])
    registry = Registry({"ollama": provider}, ttl=0.05)
    registry.start()
    assert await registry.wait_first_refresh(2)
    assert registry.refreshing
    provider.model_ids = ["a:1b", "b:1b"]
    deadline = time.monotonic() + 5
    while {m.id for m in registry.models()} != {"a:1b", "b:1b"}:
        assert time.monotonic() < deadline, "the catalog was never refreshed"
        await asyncio.sleep(0.01)
    await registry.aclose()
    assert not registry.refreshing


async def test_real_ollama_provider_through_the_registry() -> None:
    async with FakeOllama([FakeModel("llama3.2:1b")]) as fake:
        registry = build_registry(load_settings(overrides={"ollama": {"url": fake.url}}))
        await registry.refresh()
        provider, model = registry.resolve("llama3.2:1b")
        assert provider.name == "ollama" and model == "llama3.2:1b"
        assert registry.health()["ollama"].ok
        await registry.aclose()
