"""`llmhub models`: list, pull with progress, delete, against a fake Ollama."""

from __future__ import annotations

from tests.fakes.ollama import FakeModel, FakeOllama
from tests.serve import run_llmhub


async def llmhub(url: str, *args: str) -> tuple[int, str, str]:
    ran = await run_llmhub("models", *args, env={"LLMHUB_OLLAMA__URL": url})
    return ran.returncode, ran.stdout, ran.stderr


async def test_pull_shows_progress_then_the_model_is_listed() -> None:
    pullable = FakeModel("qwen3:4b", size=2_500_000_000)
    async with FakeOllama([FakeModel("llama3.2:1b")], pullable=[pullable]) as fake:
        code, out, err = await llmhub(fake.url, "pull", "qwen3:4b")
        assert code == 0, err
        assert out.strip() == "pulled qwen3:4b"
        steps = err.splitlines()
        assert steps[0] == "pulling manifest"
        assert any(line.endswith(" 50%") for line in steps)
        assert any(line.startswith("pulling ") and line.endswith(" 100%") for line in steps)
        assert steps[-1] == "success"

        code, out, _ = await llmhub(fake.url, "list")
        assert code == 0
        listed = [line.split()[-1] for line in out.splitlines()]
        assert listed == ["llama3.2:1b", "qwen3:4b"]
        assert "2.5 GB" in out

        code, out, _ = await llmhub(fake.url, "delete", "qwen3:4b")
        assert code == 0 and out.strip() == "deleted qwen3:4b"
        assert "qwen3:4b" not in fake.models


async def test_pull_of_an_unknown_model_fails_clearly() -> None:
    async with FakeOllama() as fake:
        code, _, err = await llmhub(fake.url, "pull", "no-such-model:1b")
        assert code == 1
        assert err.splitlines()[-1].startswith("llmhub: ")
        assert "Traceback" not in err


async def test_list_when_ollama_is_down() -> None:
    code, out, err = await llmhub("http://127.0.0.1:9", "list")
    assert code == 0 and out == ""
    assert "llmhub: ollama is unavailable" in err
