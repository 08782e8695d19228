"""One hub, database and FakeOllama shared by a test module (a hub per test would dominate the
runtime). In the module:

    module_fake, fake, hub = module_hub_fixtures(fake_models, limits={"requests_per_minute": 0})

gives the fixtures `module_fake` (the module's FakeOllama), `fake` (the same, its fault knobs
and records reset around each test) and `hub` (a started hub on `module_database_url` whose
Ollama is the fake, with the extra settings given). Tests that change shared state put it back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import pytest

from tests.fakes.ollama import FakeModel, FakeOllama
from tests.hub import Hub, hub_settings, started_hub


def module_hub_fixtures(
    models: Callable[[], list[FakeModel]],
    *,
    pullable: Sequence[FakeModel] = (),
    hub_name: str = "hub",
    **settings: Any,
) -> tuple[Any, Any, Any]:
    """The three fixtures (assign them to module names, as above); `hub_name` names the hub's."""

    @pytest.fixture(scope="module", name="module_fake")
    async def module_fake() -> AsyncIterator[FakeOllama]:
        async with FakeOllama(models(), pullable=list(pullable)) as server:
            yield server

    @pytest.fixture(name="fake")
    def fake(module_fake: FakeOllama) -> Iterator[FakeOllama]:
        module_fake.reset()
        yield module_fake
        module_fake.reset()  # tests that do not ask for `fake` share it too

    @pytest.fixture(scope="module", name=hub_name)
    async def hub(
        module_database_url: str,
        module_fake: FakeOllama,
        tmp_path_factory: pytest.TempPathFactory,
    ) -> AsyncIterator[Hub]:
        data_dir = tmp_path_factory.mktemp("data")
        overrides = {"ollama": {"url": module_fake.url}, **settings}
        async with started_hub(hub_settings(module_database_url, data_dir, **overrides)) as running:
            yield running

    return module_fake, fake, hub
