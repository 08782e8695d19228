"""OllamaProvider against the fake Ollama: real sockets, the real aiohttp client."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import pytest

from providers.base import (
    ChatEnd,
    ChatEvent,
    ChatMessage,
    ChatOptions,
    ChatRequest,
    EmbedRequest,
    Image,
    ModelCapabilities,
    ReasoningDelta,
    TextDelta,
)
from providers.errors import (
    InvalidRequest,
    ModelNotFound,
    ProviderUnavailable,
    Unsupported,
    UpstreamError,
)
from providers.ollama import OllamaProvider
from tests.fakes.ollama import STREAM_ERROR, VERSION, FakeModel, FakeOllama, split
from tests.net import free_port

CHAT = "llama3.2:1b"
THINKER = "qwen3:0.6b"
EMBEDDER = "nomic-embed-text:latest"
REPLY = "The sky is blue because of Rayleigh scattering."


def _models() -> list[FakeModel]:
    return [
        FakeModel(CHAT, reply=REPLY, chunks=5, capabilities=("completion", "tools")),
        FakeModel(
            THINKER,
            family="qwen3",
            capabilities=("completion", "tools", "thinking"),
            context_length=40960,
            thinking="The user asks for 2+2. That is 4.",
            reply="2 + 2 = 4.",
        ),
        FakeModel("llava:7b", families=("llama", "clip"), capabilities=("completion", "vision")),
        FakeModel(EMBEDDER, family="nomic-bert", capabilities=("embedding",), context_length=2048),
        # An Ollama too old to report capabilities, and a model whose /api/show fails.
        FakeModel("all-minilm:latest", family="bert", capabilities=None, context_length=512),
        FakeModel("bakllava:latest", families=("llama", "clip"), show_fails=True),
    ]


@pytest.fixture
async def fake() -> AsyncIterator[FakeOllama]:
    async with FakeOllama(_models(), pullable=[FakeModel("smollm2:135m", size=270_898_672)]) as f:
        yield f


@pytest.fixture
async def provider(fake: FakeOllama) -> AsyncIterator[OllamaProvider]:
    p = OllamaProvider(fake.url)
    yield p
    await p.aclose()


def _ask(model: str = CHAT, text: str = "why is the sky blue?", **kwargs: object) -> ChatRequest:
    return ChatRequest(model=model, messages=[ChatMessage("user", text)], **kwargs)  # type: ignore[arg-type]


async def _collect(events: AsyncIterator[ChatEvent]) -> list[ChatEvent]:
    return [event async for event in events]


def _text(events: Sequence[ChatEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def _reasoning(events: Sequence[ChatEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, ReasoningDelta))


def _end(events: Sequence[ChatEvent]) -> ChatEnd:
    assert isinstance(events[-1], ChatEnd)
    assert sum(isinstance(e, ChatEnd) for e in events) == 1
    return events[-1]


# -- chat: content, usage, options ------------------------------------------------------------


async def test_stream_yields_chunks_in_order_then_one_end(provider: OllamaProvider) -> None:
    events = await _collect(provider.chat(_ask()))

    assert [e.text for e in events[:-1]] == split(REPLY, 5)
    assert all(isinstance(e, TextDelta) for e in events[:-1])
    assert _end(events).stop_reason == "stop"


async def test_non_streaming_reply_is_one_delta_and_end(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    events = await _collect(provider.chat(_ask(stream=False)))

    assert events[:-1] == [TextDelta(REPLY)]
    assert _end(events).usage.output_tokens == 5
    assert fake.calls("/api/chat")[0].body["stream"] is False


async def test_content_on_the_done_line_comes_before_the_end(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    fake.content_on_done = True

    events = await _collect(provider.chat(_ask()))

    assert [e.text for e in events[:-1]] == split(REPLY, 5)
    assert _end(events).stop_reason == "stop"


async def test_end_carries_exact_usage_and_durations(provider: OllamaProvider) -> None:
    end = _end(await _collect(provider.chat(_ask(text="one two three four"))))

    assert (end.usage.input_tokens, end.usage.output_tokens, end.usage.exact) == (4, 5, True)
    assert set(end.metrics) == {
        "total_duration",
        "load_duration",
        "prompt_eval_duration",
        "eval_duration",
    }
    parts = end.metrics["load_duration"] + end.metrics["prompt_eval_duration"]
    assert end.metrics["total_duration"] == parts + end.metrics["eval_duration"]


async def test_max_tokens_cut_off_is_length(provider: OllamaProvider, fake: FakeOllama) -> None:
    request = _ask(options=ChatOptions(max_tokens=2))
    events = await _collect(provider.chat(request))

    assert _text(events) == "".join(split(REPLY, 5)[:2])
    assert _end(events).stop_reason == "length"
    assert fake.calls("/api/chat")[0].body["options"] == {"num_predict": 2}


async def test_options_reach_ollama_exactly(fake: FakeOllama) -> None:
    provider = OllamaProvider(fake.url, keep_alive="10m")
    options = ChatOptions(temperature=0.2, top_p=0.9, max_tokens=64, stop=("\n\n", "User:"), seed=7)
    request = ChatRequest(
        model=CHAT,
        messages=[ChatMessage("system", "Be brief."), ChatMessage("user", "hi")],
        options=options,
    )
    try:
        await _collect(provider.chat(request))
    finally:
        await provider.aclose()

    assert fake.calls("/api/chat")[0].body == {
        "model": CHAT,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
        ],
        "stream": True,
        "options": {
            "num_predict": 64,
            "temperature": 0.2,
            "top_p": 0.9,
            "stop": ["\n\n", "User:"],
            "seed": 7,
        },
        "keep_alive": "10m",
    }


async def test_unset_options_are_not_sent(provider: OllamaProvider, fake: FakeOllama) -> None:
    await _collect(provider.chat(_ask()))

    body = fake.calls("/api/chat")[0].body
    assert "options" not in body
    assert "keep_alive" not in body


async def test_images_are_sent_as_base64(provider: OllamaProvider, fake: FakeOllama) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    message = ChatMessage("user", "what is this?", images=(Image(png), Image(b"GIF89a")))
    await _collect(provider.chat(ChatRequest(model="llava:7b", messages=[message])))

    sent = fake.calls("/api/chat")[0].body["messages"][0]
    assert sent["images"] == [base64.b64encode(png).decode(), base64.b64encode(b"GIF89a").decode()]
    assert base64.b64decode(sent["images"][0]) == png


# -- chat: reasoning --------------------------------------------------------------------------


async def test_message_thinking_becomes_reasoning_before_text(provider: OllamaProvider) -> None:
    events = await _collect(provider.chat(_ask(THINKER, "what is 2+2?")))

    assert _reasoning(events) == "The user asks for 2+2. That is 4."
    assert _text(events) == "2 + 2 = 4."
    first_text = next(i for i, e in enumerate(events) if isinstance(e, TextDelta))
    assert all(isinstance(e, ReasoningDelta) for e in events[:first_text])


async def test_think_tags_split_across_chunks_become_reasoning(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    pieces = ["<thi", "nk>Let me", " think</th", "ink>\n\nThe answer", " is 4."]
    fake.script(CHAT, "".join(pieces), chunks=pieces)

    events = await _collect(provider.chat(_ask()))

    assert _reasoning(events) == "Let me think"
    assert _text(events) == "The answer is 4."
    assert not any("<" in e.text for e in events if isinstance(e, TextDelta | ReasoningDelta))


async def test_unterminated_think_block_is_still_reasoning(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    fake.script(CHAT, "<think>still going</thi", chunks=["<think>still", " going</thi"])

    events = await _collect(provider.chat(_ask()))

    assert _reasoning(events) == "still going</thi"
    assert _text(events) == ""


async def test_think_tag_inside_an_answer_stays_text(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    reply = "Wrap it in a <think> tag, then close with </think>."
    fake.script(CHAT, reply, chunks=4)

    events = await _collect(provider.chat(_ask()))

    assert _text(events) == reply
    assert _reasoning(events) == ""


async def test_json_line_split_across_network_reads(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    reply = "Grüße aus Köln — 世界 🙂 <ok> & done"
    fake.script(CHAT, reply, chunks=6)
    fake.split_lines = True

    events = await _collect(provider.chat(_ask()))

    assert [e.text for e in events[:-1]] == split(reply, 6)
    assert _end(events).stop_reason == "stop"


async def test_very_long_line_is_parsed(provider: OllamaProvider, fake: FakeOllama) -> None:
    reply = "x" * 300_000
    fake.script(CHAT, reply, chunks=[reply])

    events = await _collect(provider.chat(_ask()))

    assert _text(events) == reply


# -- chat: errors -----------------------------------------------------------------------------


async def test_unknown_model_raises_model_not_found(provider: OllamaProvider) -> None:
    with pytest.raises(ModelNotFound, match="not found"):
        await _collect(provider.chat(_ask("nope:latest")))


async def test_upstream_500_raises_upstream_error(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    fake.fail_next(status=500, message="llama runner process has terminated")

    with pytest.raises(UpstreamError, match="llama runner process has terminated") as info:
        await _collect(provider.chat(_ask()))
    assert type(info.value) is UpstreamError


async def test_upstream_400_raises_invalid_request(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    fake.fail_next(status=400, message="invalid options: num_predict")

    with pytest.raises(InvalidRequest, match="invalid options"):
        await _collect(provider.chat(_ask()))


async def test_connection_refused_is_unavailable_at_once() -> None:
    # A connect timeout no test could wait out: a refusal is reported as one, never waited on.
    provider = OllamaProvider(f"http://127.0.0.1:{free_port()}", connect_timeout=3600)
    try:
        with pytest.raises(ProviderUnavailable, match="unreachable") as info:
            await _collect(provider.chat(_ask()))
        with pytest.raises(ProviderUnavailable):
            await provider.list_models()
    finally:
        await provider.aclose()
    refusal = info.value.__cause__
    assert isinstance(refusal, aiohttp.ClientConnectorError)
    assert isinstance(refusal.os_error, ConnectionRefusedError)


async def test_credentials_in_the_base_url_stay_out_of_errors() -> None:
    provider = OllamaProvider(f"http://admin:s3cret@127.0.0.1:{free_port()}")
    try:
        with pytest.raises(ProviderUnavailable) as info:
            await _collect(provider.chat(_ask()))
        health = await provider.health()
    finally:
        await provider.aclose()
    assert "127.0.0.1" in info.value.message
    assert not any("s3cret" in text for text in (info.value.message, health.detail or ""))


async def test_connection_drop_mid_stream_ends_with_error_after_partial_text(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    fake.drop_after_chunks = 2

    events = await _collect(provider.chat(_ask()))

    assert _text(events) == "".join(split(REPLY, 5)[:2])
    end = _end(events)
    assert end.stop_reason == "error"
    assert end.error and "closed the connection" in end.error


async def test_error_line_mid_stream_ends_with_error(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    fake.error_after_chunks = 3

    events = await _collect(provider.chat(_ask()))

    assert _text(events) == "".join(split(REPLY, 5)[:3])
    assert _end(events) == ChatEnd(stop_reason="error", error=STREAM_ERROR)


async def test_error_line_before_any_output_raises(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    fake.error_after_chunks = 0

    with pytest.raises(UpstreamError, match=STREAM_ERROR):
        await _collect(provider.chat(_ask()))


async def test_read_timeout_mid_stream_ends_with_error(fake: FakeOllama) -> None:
    provider = OllamaProvider(fake.url, read_timeout=0.2)
    fake.stall_after_chunks = 1  # and then sends nothing more, ever
    try:
        events = await _collect(provider.chat(_ask()))
    finally:
        await provider.aclose()

    assert _text(events) == split(REPLY, 5)[0]
    end = _end(events)
    assert end.stop_reason == "error"
    assert end.error and "timed out" in end.error


async def test_read_timeout_before_output_raises(fake: FakeOllama) -> None:
    provider = OllamaProvider(fake.url, read_timeout=0.2)
    fake.stall_after_chunks = 0
    try:
        with pytest.raises(UpstreamError, match="timed out") as info:
            await _collect(provider.chat(_ask()))
    finally:
        await provider.aclose()
    assert info.value.code == "upstream_timeout"


async def test_closing_the_consumer_disconnects_upstream(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    fake.script(CHAT, "word " * 1000, chunks=1000)
    fake.chunk_delay = 0.005
    stream = provider.chat(_ask())

    first = [await anext(stream), await anext(stream)]
    assert all(isinstance(e, TextDelta) for e in first)
    assert not fake.disconnected.is_set()
    await stream.aclose()

    await asyncio.wait_for(fake.disconnected.wait(), timeout=2.0)
    assert fake.disconnects == 1


async def test_finished_streams_reuse_one_connection(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    fake.eof_delay = 0.02  # the end of the body trails the `done` line
    await _collect(provider.chat(_ask()))
    await _collect(provider.chat(_ask()))

    peers = {r.peer for r in fake.calls("/api/chat")}
    assert len(peers) == 1
    assert fake.disconnects == 0


# -- models -----------------------------------------------------------------------------------


async def test_list_models_reports_capabilities(provider: OllamaProvider, fake: FakeOllama) -> None:
    models = {m.id: m for m in await provider.list_models()}

    assert set(models) == {m.name for m in _models()}
    assert all(m.provider == "ollama" for m in models.values())
    llama = models[CHAT]
    assert llama.capabilities == ModelCapabilities(tools=True)
    assert (llama.context_length, llama.size_bytes) == (131072, 1_321_098_329)
    assert llama.family == "llama"
    assert models[THINKER].capabilities.reasoning
    assert models[THINKER].context_length == 40960
    assert models["llava:7b"].capabilities.vision
    embedder = models[EMBEDDER].capabilities
    assert (embedder.embeddings, embedder.chat) == (True, False)
    assert len(fake.calls("/api/show")) == len(models)


async def test_list_models_guesses_when_show_is_unhelpful(provider: OllamaProvider) -> None:
    models = {m.id: m for m in await provider.list_models()}

    old_embedder = models["all-minilm:latest"]
    assert (old_embedder.capabilities.embeddings, old_embedder.capabilities.chat) == (True, False)
    assert old_embedder.context_length == 512
    failed_show = models["bakllava:latest"]
    assert failed_show.capabilities.vision and failed_show.capabilities.chat
    assert failed_show.context_length is None


async def test_loaded_models_lists_what_ollama_holds(provider: OllamaProvider) -> None:
    assert await provider.loaded_models() == []
    await _collect(provider.chat(_ask()))

    [loaded] = await provider.loaded_models()

    assert loaded.name == CHAT
    assert loaded.size_vram == 1_321_098_329
    assert loaded.size_bytes > loaded.size_vram
    assert loaded.expires_at


async def test_pull_streams_progress_until_success(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    progress = [p async for p in provider.pull_model("smollm2:135m")]

    assert progress[0].status == "pulling manifest"
    assert progress[-1].status == "success"
    downloads = [p for p in progress if p.digest]
    assert downloads and all(p.digest.startswith("sha256:") and p.total for p in downloads)
    assert downloads[-1].completed == downloads[-1].total
    assert fake.calls("/api/pull")[0].body == {"model": "smollm2:135m", "stream": True}
    assert "smollm2:135m" in {m.id for m in await provider.list_models()}


async def test_pull_of_unknown_model_raises_model_not_found(provider: OllamaProvider) -> None:
    with pytest.raises(ModelNotFound, match="file does not exist"):
        async for _ in provider.pull_model("no-such-model"):
            pass


async def test_delete_removes_the_model(provider: OllamaProvider, fake: FakeOllama) -> None:
    await provider.delete_model(CHAT)

    assert fake.calls("/api/delete")[0].body == {"model": CHAT}
    assert fake.calls("/api/delete")[0].method == "DELETE"
    assert CHAT not in {m.id for m in await provider.list_models()}
    with pytest.raises(ModelNotFound):
        await provider.delete_model(CHAT)


# -- embeddings, health ------------------------------------------------------------------------


async def test_embed_returns_one_vector_per_input(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    result = await provider.embed(EmbedRequest(EMBEDDER, ["why is the sky blue?", "grass"]))

    assert len(result.vectors) == 2
    assert {len(v) for v in result.vectors} == {8}
    assert result.vectors[0] != result.vectors[1]
    assert (result.usage.input_tokens, result.usage.exact) == (6, True)
    assert fake.calls("/api/embed")[0].body == {
        "model": EMBEDDER,
        "input": ["why is the sky blue?", "grass"],
    }


async def test_embed_with_a_chat_model_is_unsupported(provider: OllamaProvider) -> None:
    with pytest.raises(Unsupported, match="does not support"):
        await provider.embed(EmbedRequest(CHAT, ["hi"]))


async def test_health_asks_only_for_the_version(fake: FakeOllama, provider: OllamaProvider) -> None:
    health = await provider.health()

    assert health.ok
    assert health.latency_ms is not None and health.latency_ms >= 0
    assert health.detail == f"Ollama {VERSION}"
    assert [r.path for r in fake.requests] == ["/api/version"]  # cheap: no model listing


async def test_health_down() -> None:
    provider = OllamaProvider(f"http://127.0.0.1:{free_port()}")
    try:
        health = await provider.health()
    finally:
        await provider.aclose()

    assert not health.ok
    assert health.detail and "unreachable" in health.detail


async def test_a_call_racing_aclose_leaves_no_session_open(
    fake: FakeOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions: list[aiohttp.ClientSession] = []
    real = aiohttp.ClientSession

    def recorded(**kwargs: Any) -> aiohttp.ClientSession:
        sessions.append(real(**kwargs))
        return sessions[-1]

    monkeypatch.setattr(aiohttp, "ClientSession", recorded)
    provider = OllamaProvider(fake.url)
    await provider.health()
    closing = asyncio.create_task(provider.aclose())
    await asyncio.sleep(0)  # aclose is now waiting for the connector to close
    await provider.health()  # opens a second session while the first is closing
    await closing
    await provider.aclose()

    assert len(sessions) == 2
    assert all(session.closed for session in sessions)


def test_constructor_does_no_io_and_rejects_bad_urls() -> None:
    provider = OllamaProvider("https://ollama.internal:11434/")
    assert provider.name == "ollama" and provider.supports_pull
    with pytest.raises(ValueError, match="http"):
        OllamaProvider("ollama.internal:11434")
