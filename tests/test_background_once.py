"""Background work that several replicas all attempt runs once: the session sweep and the
catalog's writes."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import asyncpg
import pytest

from llmhub.db import create_pool
from llmhub.repo import jobs
from llmhub.repo import models as models_repo
from providers.base import ModelInfo


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    created = await create_pool(database_url, min_size=4, max_size=4, connect_timeout=10)
    async with created:
        yield created


async def test_one_of_many_replicas_claims_each_round(pool: asyncpg.Pool) -> None:
    claims = await asyncio.gather(*(jobs.claim(pool, "sweep", 3600) for _ in range(8)))
    assert claims.count(True) == 1
    assert await jobs.claim(pool, "sweep", 3600) is False  # this round is taken
    assert await jobs.claim(pool, "another job", 3600) is True
    await pool.execute("UPDATE background_runs SET ran_at = now() - interval '2 hours'")
    assert await jobs.claim(pool, "sweep", 3600) is True  # the next round


async def test_a_model_seen_by_every_replica_is_written_once_per_round(
    pool: asyncpg.Pool,
) -> None:
    model = ModelInfo(id="llama3.2:1b", provider="ollama", name="llama3.2:1b", size_bytes=10)

    async def written_at() -> object:
        return await pool.fetchval("SELECT xmin::text FROM models WHERE id = $1", model.id)

    await models_repo.upsert_seen(pool, [model], fresh_for=150)
    first = await written_at()
    # The other replicas refresh the same catalog: the row is left as it is.
    await asyncio.gather(*(models_repo.upsert_seen(pool, [model], fresh_for=150) for _ in range(3)))
    assert await written_at() == first
    # A change in what the provider reports is written at once.
    bigger = dataclasses.replace(model, size_bytes=20)
    await models_repo.upsert_seen(pool, [bigger], fresh_for=150)
    assert await written_at() != first
    size = await pool.fetchval("SELECT size_bytes FROM models WHERE id = $1", model.id)
    assert size == 20
