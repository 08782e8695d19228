"""Catalog detail for admins and users: family, parameter size, quantisation, context length,
size on disk, loaded or not and its GPU share, Bedrock's LEGACY status, last seen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.chat_support import eventually
from tests.fakes.bedrock import FakeBedrock
from tests.fakes.ollama import FakeModel, FakeOllama
from tests.hub import Client, hub_settings, started_hub

CHAT = "qwen2.5:7b"
LEGACY = "cohere.command-text-v14"


async def by_id(client: Client, path: str) -> dict[str, dict[str, Any]]:
    response = await client.get(path)
    assert response.status == 200, response.text
    return {m["id"]: m for m in response.body["data"]}


async def test_the_catalog_tells_what_each_model_is(
    database_url: str, data_dir: Path, aws_env: None
) -> None:
    qwen = FakeModel(
        CHAT, family="qwen2", parameter_size="7.6B", context_length=32768, size=4_683_087_332
    )
    async with FakeOllama([qwen, FakeModel("gone:1b")]) as ollama, FakeBedrock() as bedrock:
        settings = hub_settings(
            database_url,
            data_dir,
            mode="hybrid",
            ollama={"url": ollama.url},
            bedrock={"endpoint_url": bedrock.url, "max_attempts": 1},
            health_interval=0.1,
        )
        async with started_hub(settings) as hub:
            admin = await hub.signup("admin@example.com")
            models = await by_id(admin, "/api/admin/models")
            local = models[CHAT]
            assert {k: local[k] for k in ("family", "parameter_size", "quantization")} == {
                "family": "qwen2",
                "parameter_size": "7.6B",
                "quantization": "Q4_K_M",
            }
            assert (local["context_length"], local["size_bytes"]) == (32768, 4_683_087_332)
            assert (local["loaded"], local["gpu_ratio"], local["deprecated"]) == (
                False,
                None,
                False,
            )
            assert local["last_seen_at"]

            assert models[LEGACY]["lifecycle"] == "LEGACY" and models[LEGACY]["deprecated"]
            assert models[LEGACY]["loaded"] is None  # Bedrock has no notion of it
            active = next(m for m in models.values() if m["provider"] == "bedrock"
                          and not m["deprecated"])  # fmt: skip
            assert active["lifecycle"] == "ACTIVE"

            # Used once, the model is in Ollama's memory; the catalog shows its GPU share.
            api = await hub.key_client(admin)
            chat = {"model": CHAT, "messages": [{"role": "user", "content": "Hi"}]}
            assert (await api.post("/v1/chat/completions", chat)).status == 200

            async def loaded() -> dict[str, Any] | None:
                model = (await by_id(admin, "/api/models"))[CHAT]
                return model if model["loaded"] else None

            model = await eventually(loaded, what="the model to show as loaded")
            # The fake holds the weights on the GPU and 500 MB of the context in RAM.
            assert model["memory_bytes"] == qwen.size + 500_000_000
            assert model["gpu_ratio"] == round(qwen.size / (qwen.size + 500_000_000), 3)

            # A model no longer offered keeps its detail, with when it was last seen.
            assert (await admin.delete("/api/admin/models/gone:1b")).status == 200
            gone = (await by_id(admin, "/api/admin/models"))["gone:1b"]
            assert gone["available"] is False
            assert (gone["family"], gone["parameter_size"]) == ("llama", "1.2B")
            assert gone["last_seen_at"]
