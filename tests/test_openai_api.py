"""The OpenAI-compatible API (`/v1`), end to end: the real app on a real socket, in front of
FakeOllama (and FakeBedrock in hybrid mode), driven by the official `openai` SDK and by raw HTTP.
"""

from __future__ import annotations

import array
import asyncio
import base64
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import openai
import pytest

from llmhub import model_calls
from llmhub.config import Settings
from llmhub.repo.usage import UsageRow
from tests.fakes.bedrock import FakeBedrock
from tests.fakes.ollama import FakeModel, FakeOllama
from tests.hub import Client, Hub, Response, assert_error, started_hub
from tests.hub import hub_settings as shared_settings
from tests.module_fixtures import module_hub_fixtures

CHAT = "llama3.2:1b"
OTHER = "qwen2.5:0.5b"
VISION = "llava:7b"
EMBED = "nomic-embed-text:latest"
REPLY = "The quick brown fox jumps over the lazy dog."  # nine words: nine streamed pieces
REPLY_PIECES = REPLY.split(" ")
BEDROCK_CHAT = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
TITAN_EMBED = "amazon.titan-embed-text-v2:0"
MAX_BODY = 64 * 1024


def fake_models() -> list[FakeModel]:
    return [
        FakeModel(CHAT, reply=REPLY),
        FakeModel(OTHER, reply="Other model here."),
        FakeModel(VISION, capabilities=("completion", "vision"), reply="A red square."),
        FakeModel(EMBED, family="nomic-bert", capabilities=("embedding",), embedding_dim=8),
    ]


def hub_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    return shared_settings(database_url, data_dir, **{"max_body_bytes": MAX_BODY, **overrides})


# One hub, database and fake Ollama for the module; tests that change shared state (fault
# knobs, limits) put it back, or use their own hub.
module_fake, fake, ohub = module_hub_fixtures(
    fake_models,
    hub_name="ohub",
    max_body_bytes=MAX_BODY,
    limits={"requests_per_minute": 0},  # unlimited by default: limit tests set their own, per user
)


@dataclass
class Account:
    """A signed-in user (browser-like `web` client) with one API key (`api` client)."""

    web: Client
    api: Client
    user_id: str
    key: str
    key_id: str


async def make_account(hub: Hub, email: str, web: Client | None = None, **key: Any) -> Account:
    web = web or await hub.signup(email)
    me = await web.get("/api/auth/me")
    created = await web.post("/api/keys", {"name": "sdk", **key})
    assert created.status == 201, created.text
    secret = created.body["key"]
    return Account(
        web,
        hub.client(api_key=secret),
        me.body["user"]["id"],
        secret,
        created.body["api_key"]["id"],
    )


@pytest.fixture(scope="module")
async def admin(ohub: Hub) -> Account:
    """The first user to sign up: an admin."""
    return await make_account(ohub, "alice@example.com")


@pytest.fixture
async def alice(ohub: Hub, admin: Account) -> Account:
    """The admin, with a fresh API key: usage rows of this test are those of `alice.key_id`."""
    return await make_account(ohub, "alice@example.com", web=admin.web)


_users = itertools.count()


async def new_user(hub: Hub) -> Account:
    return await make_account(hub, f"user{next(_users)}@example.com")


@pytest.fixture
async def sdk(ohub: Hub, alice: Account) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=f"{ohub.url}/v1", api_key=alice.key, max_retries=0)
    yield client
    await client.close()


@pytest.fixture
def usage_log(monkeypatch: pytest.MonkeyPatch) -> asyncio.Queue[UsageRow]:
    """Every usage row, once written: the hook lets a test wait for bookkeeping without sleeping."""
    written: asyncio.Queue[UsageRow] = asyncio.Queue()
    insert = model_calls.insert_usage

    async def recording(db: Any, row: UsageRow) -> None:
        await insert(db, row)
        written.put_nowait(row)

    monkeypatch.setattr(model_calls, "insert_usage", recording)
    return written


async def next_usage(log: asyncio.Queue[UsageRow]) -> UsageRow:
    return await asyncio.wait_for(log.get(), 5)


async def usage_rows(database_url: str, key_id: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT * FROM usage WHERE api_key_id = $1 ORDER BY id", uuid.UUID(key_id)
        )
        return [dict(r) for r in rows]
    finally:
        await conn.close()


def user_says(text: str = "Hi") -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


async def post_raw(
    hub: Hub, path: str, body: Any, key: str | None, *, raw: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = raw if raw is not None else json.dumps(body).encode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(hub.url + path, data=data, headers=headers) as response,
    ):
        return response.status, dict(response.headers), await response.read()


def sse_events(raw: bytes) -> list[str]:
    """The `data:` payloads of an SSE body, checking every event is exactly `data: …\\n\\n`."""
    assert raw.endswith(b"\n\n"), raw[-40:]
    events = raw[:-2].split(b"\n\n")
    payloads = []
    for event in events:
        assert event.startswith(b"data: ") and b"\n" not in event, event
        payloads.append(event[len(b"data: ") :].decode())
    return payloads


def last_chat_body(fake: FakeOllama) -> dict[str, Any]:
    return fake.calls("/api/chat")[-1].body


# -- 1. the official SDK --------------------------------------------------------------------------


async def test_sdk_lists_models_with_their_provider(ohub: Hub, alice: Account) -> None:
    async with openai.AsyncOpenAI(
        base_url=f"{ohub.url}/v1", api_key=alice.key, max_retries=0
    ) as client:
        page = await client.models.list()
    models = {m.id: m for m in page.data}
    assert set(models) == {CHAT, OTHER, VISION, EMBED}
    assert {m.owned_by for m in models.values()} == {"ollama"}
    assert all(m.object == "model" for m in models.values())

    def sync_list() -> list[str]:
        with openai.OpenAI(base_url=f"{ohub.url}/v1", api_key=alice.key, max_retries=0) as c:
            return sorted(m.id for m in c.models.list())

    assert await asyncio.to_thread(sync_list) == sorted(models)


async def test_sdk_async_chat_completion(sdk: openai.AsyncOpenAI) -> None:
    completion = await sdk.chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": "Say something nice"}]
    )
    assert completion.object == "chat.completion"
    assert completion.model == CHAT
    assert completion.id.startswith("chatcmpl-")
    (choice,) = completion.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == REPLY
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    # The fake counts prompt words as prompt tokens and streamed pieces as output tokens.
    assert completion.usage.prompt_tokens == 3
    assert completion.usage.completion_tokens == len(REPLY_PIECES)
    assert completion.usage.total_tokens == 3 + len(REPLY_PIECES)


async def test_sdk_async_streaming_concatenates_to_the_reply(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.chat.completions.create(model=CHAT, messages=user_says(), stream=True)
    chunks = [chunk async for chunk in stream]
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REPLY
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    # Without stream_options, no chunk carries usage.
    assert all(c.usage is None for c in chunks)


async def test_sdk_stream_include_usage_ends_with_a_usage_chunk(
    sdk: openai.AsyncOpenAI,
) -> None:
    stream = await sdk.chat.completions.create(
        model=CHAT,
        messages=user_says("Hello there"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    *body, last = chunks
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (2, len(REPLY_PIECES))
    assert last.usage.total_tokens == 2 + len(REPLY_PIECES)
    assert all(c.usage is None and len(c.choices) == 1 for c in body)
    assert "".join(c.choices[0].delta.content or "" for c in body) == REPLY
    assert body[-1].choices[0].finish_reason == "stop"


async def test_sdk_sync_client_whole_and_streamed(ohub: Hub, alice: Account) -> None:
    def use_sync_client() -> tuple[Any, list[Any]]:
        with openai.OpenAI(base_url=f"{ohub.url}/v1", api_key=alice.key, max_retries=0) as c:
            whole = c.chat.completions.create(model=CHAT, messages=user_says())
            streamed = list(
                c.chat.completions.create(
                    model=CHAT,
                    messages=user_says(),
                    stream=True,
                    stream_options={"include_usage": True},
                )
            )
            return whole, streamed

    whole, streamed = await asyncio.to_thread(use_sync_client)
    assert whole.choices[0].message.content == REPLY
    assert whole.choices[0].finish_reason == "stop"
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == REPLY
    assert streamed[-1].usage is not None and streamed[-1].choices == []
    assert streamed[-1].usage.completion_tokens == whole.usage.completion_tokens


async def test_sdk_embeddings_float_and_base64(
    sdk: openai.AsyncOpenAI, ohub: Hub, alice: Account
) -> None:
    inputs = ["first text", "second text"]
    as_floats = await sdk.embeddings.create(model=EMBED, input=inputs, encoding_format="float")
    assert [d.index for d in as_floats.data] == [0, 1]
    vectors = [d.embedding for d in as_floats.data]
    assert all(len(v) == 8 for v in vectors)
    assert vectors[0] != vectors[1]
    assert as_floats.usage.prompt_tokens == 4
    assert as_floats.model == EMBED

    # The SDK's default asks for base64 and decodes it itself.
    default = await sdk.embeddings.create(model=EMBED, input=inputs)
    for got, want in zip(default.data, vectors, strict=True):
        assert got.embedding == pytest.approx(want, rel=1e-6)

    # Asked explicitly, the SDK hands back the base64 string: little-endian float32s.
    status, _, raw = await post_raw(
        ohub,
        "/v1/embeddings",
        {"model": EMBED, "input": "first text", "encoding_format": "base64"},
        alice.key,
    )
    assert status == 200
    encoded = json.loads(raw)["data"][0]["embedding"]
    assert isinstance(encoded, str)
    decoded = array.array("f", base64.b64decode(encoded)).tolist()
    assert decoded == pytest.approx(vectors[0], rel=1e-6)

    # A single string input is one vector too.
    single = await sdk.embeddings.create(model=EMBED, input="first text", encoding_format="float")
    assert single.data[0].embedding == vectors[0]


# -- 1b. Bedrock through hybrid mode --------------------------------------------------------------


async def test_sdk_through_hybrid_mode_reaches_bedrock(
    database_url: str, data_dir: Path, fake: FakeOllama, aws_env: None
) -> None:
    async with FakeBedrock() as bedrock:
        settings = hub_settings(
            database_url,
            data_dir,
            mode="hybrid",
            ollama={"url": fake.url},
            bedrock={"endpoint_url": bedrock.url, "max_attempts": 1},
        )
        async with started_hub(settings) as hub:
            account = await make_account(hub, "alice@example.com")
            async with openai.AsyncOpenAI(
                base_url=f"{hub.url}/v1", api_key=account.key, max_retries=0
            ) as client:
                owners = {m.id: m.owned_by for m in (await client.models.list()).data}
                assert owners[CHAT] == "ollama"
                assert owners[BEDROCK_CHAT] == "bedrock"

                whole = await client.chat.completions.create(
                    model=BEDROCK_CHAT, messages=user_says(), max_tokens=50
                )
                assert whole.choices[0].message.content == "Hello from the fake Bedrock!"
                assert whole.choices[0].finish_reason == "stop"
                assert (whole.usage.prompt_tokens, whole.usage.completion_tokens) == (12, 6)

                stream = await client.chat.completions.create(
                    model=BEDROCK_CHAT,
                    messages=[{"role": "system", "content": "Be brief"}, *user_says()],
                    stream=True,
                    stream_options={"include_usage": True},
                )
                chunks = [c async for c in stream]

                embedded = await client.embeddings.create(
                    model=TITAN_EMBED, input="hello", dimensions=256, encoding_format="float"
                )
                assert owners[TITAN_EMBED] == "bedrock"
                assert len(embedded.data[0].embedding) == 256
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert text == "Hello from the fake Bedrock!"
            assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6
            converse = bedrock.calls("ConverseStream")[-1]
            assert converse.model_id == BEDROCK_CHAT
            assert converse.body["system"] == [{"text": "Be brief"}]
            assert bedrock.calls("Converse")[-1].body["inferenceConfig"]["maxTokens"] == 50


# -- 2. the exact SSE wire format -----------------------------------------------------------------


async def test_streaming_wire_format(ohub: Hub, alice: Account, fake: FakeOllama) -> None:
    status, headers, raw = await post_raw(
        ohub,
        "/v1/chat/completions",
        {"model": CHAT, "messages": user_says(), "stream": True},
        alice.key,
    )
    assert status == 200
    assert headers["Content-Type"].split(";")[0] == "text/event-stream"
    assert headers["Cache-Control"] == "no-cache"
    payloads = sse_events(raw)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert all(c["model"] == CHAT and len(c["choices"]) == 1 for c in chunks)
    assert len({c["id"] for c in chunks}) == 1 and len({c["created"] for c in chunks}) == 1
    first, *middle, last = chunks
    assert first["choices"][0]["delta"]["role"] == "assistant"
    assert first["choices"][0]["finish_reason"] is None
    assert all(c["choices"][0]["finish_reason"] is None for c in middle)
    assert [c["choices"][0]["delta"]["content"] for c in middle] == [
        p if i == 0 else " " + p for i, p in enumerate(REPLY_PIECES)
    ]
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["choices"][0]["delta"] == {}
    assert "usage" not in last  # only with stream_options.include_usage


# -- 3. what reaches the upstream -----------------------------------------------------------------


async def test_finish_reason_length_when_the_token_limit_stops_the_model(
    sdk: openai.AsyncOpenAI, fake: FakeOllama
) -> None:
    whole = await sdk.chat.completions.create(model=CHAT, messages=user_says(), max_tokens=3)
    assert whole.choices[0].finish_reason == "length"
    assert whole.choices[0].message.content == "The quick brown"
    assert whole.usage.completion_tokens == 3

    stream = await sdk.chat.completions.create(
        model=CHAT, messages=user_says(), max_completion_tokens=2, stream=True
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "The quick"
    assert chunks[-1].choices[0].finish_reason == "length"


async def test_system_and_developer_roles_reach_ollama_as_system(
    sdk: openai.AsyncOpenAI, fake: FakeOllama
) -> None:
    await sdk.chat.completions.create(
        model=CHAT,
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": "Answer in English."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": [{"type": "text", "text": "How are you?"}]},
        ],
    )
    assert last_chat_body(fake)["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "system", "content": "Answer in English."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "How are you?"},
    ]


@pytest.mark.parametrize(
    ("params", "options"),
    [
        (
            {"temperature": 0.2, "top_p": 0.9, "max_tokens": 100, "stop": "END", "seed": 7},
            {"temperature": 0.2, "top_p": 0.9, "num_predict": 100, "stop": ["END"], "seed": 7},
        ),
        (
            {"max_completion_tokens": 50, "stop": ["a", "b"]},
            {"num_predict": 50, "stop": ["a", "b"]},
        ),
        ({}, None),
    ],
)
async def test_sampling_options_reach_ollama(
    sdk: openai.AsyncOpenAI, fake: FakeOllama, params: dict[str, Any], options: Any
) -> None:
    for stream in (False, True):
        response = await sdk.chat.completions.create(
            model=CHAT, messages=user_says(), stream=stream, **params
        )
        if stream:
            _ = [c async for c in response]
        body = last_chat_body(fake)
        assert body.get("options") == options
        assert body["stream"] is stream
        assert body["model"] == CHAT


async def test_image_parts_reach_ollama_as_base64(
    sdk: openai.AsyncOpenAI, fake: FakeOllama
) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    completion = await sdk.chat.completions.create(
        model=VISION,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": url, "detail": "low"}},
                ],
            }
        ],
    )
    assert completion.choices[0].message.content == "A red square."
    (message,) = last_chat_body(fake)["messages"]
    assert message["content"] == "What is this?"
    assert [base64.b64decode(i) for i in message["images"]] == [png]


@pytest.mark.parametrize(
    "url", ["https://example.com/cat.png", "data:image/png;base64,not*base64!", "data:,plain"]
)
async def test_unusable_image_urls_are_400_invalid_image(
    sdk: openai.AsyncOpenAI, fake: FakeOllama, url: str
) -> None:
    calls = len(fake.calls("/api/chat"))
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk.chat.completions.create(
            model=VISION,
            messages=[
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
            ],
        )
    assert caught.value.status_code == 400
    assert caught.value.code == "invalid_image"
    assert len(fake.calls("/api/chat")) == calls


# -- 4. errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b'{"model": "llama3.2:1b", "messages": [', 400, "invalid_json"),
        (b"\xff\xfe not utf-8", 400, "invalid_json"),
        (b'{"model": "llama3.2:1b", "messages": [], "bogus": 1}', 400, "validation_error"),
        (b'{"messages": [{"role": "user", "content": "Hi"}]}', 400, "validation_error"),
        (b'{"model": "llama3.2:1b", "messages": []}', 400, "validation_error"),
        (
            b'{"model": "llama3.2:1b", "messages": [{"role": "user", "content": "Hi"}], "n": 2}',
            400,
            "validation_error",
        ),
        (
            b'{"model": "llama3.2:1b", "messages": [{"role": "tool", "content": "x"}]}',
            400,
            "validation_error",
        ),
        (
            b'{"model": "no-such-model", "messages": [{"role": "user", "content": "Hi"}]}',
            404,
            "model_not_found",
        ),
    ],
)
async def test_bad_chat_requests_get_openai_style_errors(
    ohub: Hub, alice: Account, fake: FakeOllama, raw: bytes, status: int, code: str
) -> None:
    calls = len(fake.calls("/api/chat"))
    got_status, headers, body = await post_raw(
        ohub, "/v1/chat/completions", None, alice.key, raw=raw
    )
    assert headers["Content-Type"].startswith("application/json")
    assert_error(Response.parse(got_status, body), status, code)
    assert len(fake.calls("/api/chat")) == calls


async def test_unknown_field_error_names_the_field(ohub: Hub, alice: Account) -> None:
    body = {"model": CHAT, "messages": user_says(), "temprature": 0.5}
    status, _, raw = await post_raw(ohub, "/v1/chat/completions", body, alice.key)
    error = assert_error(Response.parse(status, raw), 400, "validation_error")
    assert "temprature" in error["message"]


async def test_sdk_exceptions_for_client_errors(ohub: Hub, sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as not_found:
        await sdk.chat.completions.create(model="llama3.2:1c", messages=user_says())
    assert not_found.value.code == "model_not_found"
    assert "did you mean llama3.2:1b" in not_found.value.message
    with pytest.raises(openai.NotFoundError):
        await sdk.embeddings.create(model="no-such-embedder", input="x")
    with pytest.raises(openai.BadRequestError):
        await sdk.chat.completions.create(model=CHAT, messages=user_says(), n=2)
    async with openai.AsyncOpenAI(
        base_url=f"{ohub.url}/v1", api_key="lh_not-a-real-key", max_retries=0
    ) as stranger:
        with pytest.raises(openai.AuthenticationError) as unauthorized:
            await stranger.models.list()
    assert unauthorized.value.status_code == 401


@pytest.mark.parametrize("path", ["/v1/models", "/v1/chat/completions", "/v1/embeddings"])
async def test_no_credentials_is_401(ohub: Hub, path: str) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            "GET" if path == "/v1/models" else "POST", ohub.url + path, json={}
        ) as response,
    ):
        assert_error(Response.parse(response.status, await response.read()), 401)


@pytest.mark.parametrize("stream", [False, True])
async def test_upstream_failure_before_output_is_a_502_json_error(
    ohub: Hub, alice: Account, fake: FakeOllama, sdk: openai.AsyncOpenAI, stream: bool
) -> None:
    fake.fail_next(status=500, message="llama runner process has terminated")
    body = {"model": CHAT, "messages": user_says(), "stream": stream}
    status, headers, raw = await post_raw(ohub, "/v1/chat/completions", body, alice.key)
    assert headers["Content-Type"].startswith("application/json")
    error = assert_error(Response.parse(status, raw), 502, "upstream_error")
    assert "llama runner process has terminated" in error["message"]

    fake.fail_next(status=500)
    with pytest.raises(openai.InternalServerError) as caught:
        await sdk.chat.completions.create(model=CHAT, messages=user_says(), stream=stream)
    assert caught.value.status_code == 502


async def test_upstream_drop_mid_stream_ends_the_stream_with_an_error(
    ohub: Hub, alice: Account, fake: FakeOllama, sdk: openai.AsyncOpenAI
) -> None:
    fake.drop_after_chunks = 3
    body = {"model": CHAT, "messages": user_says(), "stream": True}
    status, _, raw = await post_raw(ohub, "/v1/chat/completions", body, alice.key)
    assert status == 200
    payloads = sse_events(raw)
    assert payloads[-1] == "[DONE]"
    *chunks, error = [json.loads(p) for p in payloads[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "The quick brown"
    assert error["error"]["code"] == "upstream_error"
    assert "finish_reason" not in json.dumps(error)

    stream = await sdk.chat.completions.create(model=CHAT, messages=user_says(), stream=True)
    received: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "The quick brown"
    assert "closed the connection" in caught.value.message


async def test_oversized_body_is_413(ohub: Hub, alice: Account, fake: FakeOllama) -> None:
    big = {"model": CHAT, "messages": user_says("x" * MAX_BODY)}
    status, _, raw = await post_raw(ohub, "/v1/chat/completions", big, alice.key)
    assert_error(Response.parse(status, raw), 413, "payload_too_large")

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        encoded = json.dumps(big).encode()
        for start in range(0, len(encoded), 16 * 1024):
            yield encoded[start : start + 16 * 1024]

    async with (
        aiohttp.ClientSession() as session,
        session.post(
            ohub.url + "/v1/chat/completions",
            data=chunked(),
            headers={"Authorization": f"Bearer {alice.key}"},
        ) as response,
    ):
        assert_error(
            Response.parse(response.status, await response.read()), 413, "payload_too_large"
        )
    assert fake.calls("/api/chat") == []


# -- 5. Server-Timing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"model": CHAT, "messages": user_says()}),
        ("/v1/chat/completions", {"model": CHAT, "messages": user_says(), "stream": True}),
        ("/v1/embeddings", {"model": EMBED, "input": "hello"}),
    ],
)
async def test_server_timing_reports_gateway_overhead(
    ohub: Hub, alice: Account, path: str, body: dict[str, Any]
) -> None:
    status, headers, _ = await post_raw(ohub, path, body, alice.key)
    assert status == 200
    metrics = {m.strip().split(";")[0]: m.strip() for m in headers["Server-Timing"].split(",")}
    gateway = metrics["gateway"]
    duration = next(p for p in gateway.split(";") if p.startswith("dur="))
    assert float(duration.removeprefix("dur=")) >= 0
    if not body.get("stream"):
        assert "upstream" in metrics


# -- 6. usage rows --------------------------------------------------------------------------------


async def test_every_call_writes_a_usage_row(
    ohub: Hub,
    alice: Account,
    sdk: openai.AsyncOpenAI,
    usage_log: asyncio.Queue[UsageRow],
    module_database_url: str,
) -> None:
    await sdk.chat.completions.create(model=CHAT, messages=user_says("One two"))
    await next_usage(usage_log)
    stream = await sdk.chat.completions.create(
        model=OTHER, messages=user_says("One two three"), stream=True
    )
    _ = [c async for c in stream]
    await next_usage(usage_log)
    await sdk.embeddings.create(model=EMBED, input=["a b c d"])
    await next_usage(usage_log)

    rows = await usage_rows(module_database_url, alice.key_id)
    summary = [
        (r["provider"], r["model"], r["input_tokens"], r["output_tokens"], r["status"])
        for r in rows
    ]
    assert summary == [
        ("ollama", CHAT, 2, len(REPLY_PIECES), "complete"),
        ("ollama", OTHER, 3, 3, "complete"),
        ("ollama", EMBED, 4, 0, "complete"),
    ]
    assert {str(r["user_id"]) for r in rows} == {alice.user_id}
    assert {str(r["api_key_id"]) for r in rows} == {alice.key_id}
    assert all(r["exact"] for r in rows)
    assert all(r["duration_ms"] is not None for r in rows)
    assert rows[0]["ttft_ms"] is not None and rows[1]["ttft_ms"] is not None


async def test_failed_calls_write_error_rows(
    ohub: Hub,
    alice: Account,
    fake: FakeOllama,
    usage_log: asyncio.Queue[UsageRow],
    module_database_url: str,
) -> None:
    fake.drop_after_chunks = 2
    body = {"model": CHAT, "messages": user_says(), "stream": True}
    status, _, _ = await post_raw(ohub, "/v1/chat/completions", body, alice.key)
    assert status == 200
    row = await next_usage(usage_log)
    assert row.status == "error"
    assert [r["status"] for r in await usage_rows(module_database_url, alice.key_id)] == ["error"]


@pytest.mark.parametrize("stream", [False, True])
async def test_calls_refused_upstream_before_output_still_count(
    ohub: Hub,
    alice: Account,
    fake: FakeOllama,
    usage_log: asyncio.Queue[UsageRow],
    module_database_url: str,
    stream: bool,
) -> None:
    fake.fail_next(status=500)
    body = {"model": CHAT, "messages": user_says(), "stream": stream}
    status, _, _ = await post_raw(ohub, "/v1/chat/completions", body, alice.key)
    assert status == 502
    row = await next_usage(usage_log)
    assert (row.status, row.input_tokens, row.output_tokens) == ("error", 0, 0)
    rows = await usage_rows(module_database_url, alice.key_id)
    assert [(r["status"], r["model"]) for r in rows] == [("error", CHAT)]


async def test_client_disconnect_stops_upstream_and_records_stopped(
    ohub: Hub,
    alice: Account,
    fake: FakeOllama,
    usage_log: asyncio.Queue[UsageRow],
    module_database_url: str,
) -> None:
    fake.stall_after_chunks = 3  # the model keeps "thinking" until someone hangs up
    body = {"model": CHAT, "messages": user_says(), "stream": True}
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            ohub.url + "/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {alice.key}"},
        )
        assert response.status == 200
        received = b""
        while b"brown" not in received:  # all three pieces the model produced
            received += await response.content.readany()
        response.close()  # hang up mid-stream
    await asyncio.wait_for(fake.disconnected.wait(), 5)
    row = await next_usage(usage_log)
    assert row.status == "stopped"
    assert row.output_tokens > 0 and not row.exact
    (stored,) = await usage_rows(module_database_url, alice.key_id)
    assert stored["status"] == "stopped"
    assert str(stored["api_key_id"]) == alice.key_id


async def test_sdk_stream_closed_right_after_done_still_records_usage(
    sdk: openai.AsyncOpenAI,
    alice: Account,
    usage_log: asyncio.Queue[UsageRow],
    module_database_url: str,
) -> None:
    # The SDK hangs up as soon as it reads [DONE], racing the hub's bookkeeping.
    for _ in range(5):
        stream = await sdk.chat.completions.create(model=CHAT, messages=user_says(), stream=True)
        _ = [c async for c in stream]
        row = await next_usage(usage_log)
        assert row.status == "complete" and row.output_tokens == len(REPLY_PIECES)
    assert len(await usage_rows(module_database_url, alice.key_id)) == 5


# -- 7. the API key's model allow-list ------------------------------------------------------------


async def test_key_allow_list_limits_models(ohub: Hub, alice: Account, fake: FakeOllama) -> None:
    limited = await make_account(
        ohub, "alice@example.com", web=alice.web, allowed_models=[CHAT, EMBED]
    )
    listed = await limited.api.get("/v1/models")
    assert listed.status == 200
    assert sorted(m["id"] for m in listed.body["data"]) == sorted([CHAT, EMBED])

    ok = await limited.api.post("/v1/chat/completions", {"model": CHAT, "messages": user_says()})
    assert ok.status == 200, ok.text
    prefixed = await limited.api.post(
        "/v1/chat/completions", {"model": f"ollama/{CHAT}", "messages": user_says()}
    )
    assert prefixed.status == 200, prefixed.text

    calls = len(fake.calls("/api/chat"))
    denied = await limited.api.post(
        "/v1/chat/completions", {"model": OTHER, "messages": user_says()}
    )
    assert denied.status == 403
    assert denied.error_code == "model_not_allowed"
    assert set(denied.body["error"]) == {"message", "type", "code"}
    assert len(fake.calls("/api/chat")) == calls

    # The same user's unrestricted key, and the web session, still see everything.
    assert len((await alice.api.get("/v1/models")).body["data"]) == 4


async def test_allow_list_entries_may_carry_the_provider_prefix(ohub: Hub, alice: Account) -> None:
    limited = await make_account(
        ohub, "alice@example.com", web=alice.web, allowed_models=[f"ollama/{CHAT}"]
    )
    listed = await limited.api.get("/v1/models")
    assert [m["id"] for m in listed.body["data"]] == [CHAT]
    for model in (CHAT, f"ollama/{CHAT}"):
        ok = await limited.api.post(
            "/v1/chat/completions", {"model": model, "messages": user_says()}
        )
        assert ok.status == 200, ok.text
    denied = await limited.api.post(
        "/v1/chat/completions", {"model": OTHER, "messages": user_says()}
    )
    assert denied.error_code == "model_not_allowed"


# -- 8. rate limits and token quotas --------------------------------------------------------------


async def set_user_limits(admin: Client, user_id: str, **limits: int) -> None:
    updated = await admin.patch(f"/api/admin/users/{user_id}", {"limits": limits})
    assert updated.status == 200, updated.text


def assert_429(response: Any, code: str, limit_words: str) -> None:
    assert response.status == 429, response.text
    assert int(response.headers["Retry-After"]) >= 1
    assert response.error_code == code
    assert limit_words in response.body["error"]["message"]
    assert response.body["error"]["type"] == "rate_limit_error"


@dataclass
class FrozenClock:
    now: float

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def limiter_clock(ohub: Hub, monkeypatch: pytest.MonkeyPatch) -> FrozenClock:
    """Token quotas count in fixed windows of the limiter's clock: frozen 10 s into a minute,
    so no test straddles a window by chance; a test moves it to cross one."""
    clock = FrozenClock(time.time() // 60 * 60 + 10)
    monkeypatch.setattr(ohub.app.state.limiter, "clock", clock)
    return clock


async def test_requests_per_minute_limit(ohub: Hub, alice: Account, fake: FakeOllama) -> None:
    bob = await new_user(ohub)
    await set_user_limits(alice.web, bob.user_id, requests_per_minute=2)
    chat = {"model": CHAT, "messages": user_says()}
    for _ in range(2):
        assert (await bob.api.post("/v1/chat/completions", chat)).status == 200
    calls = len(fake.calls("/api/chat"))
    third = await bob.api.post("/v1/chat/completions", chat)
    assert_429(third, "rate_limit_requests", "2 requests per minute")
    assert int(third.headers["Retry-After"]) <= 60
    assert len(fake.calls("/api/chat")) == calls
    # Embeddings count against the same limit; another user is not affected.
    assert (await bob.api.post("/v1/embeddings", {"model": EMBED, "input": "x"})).status == 429
    assert (await alice.api.post("/v1/chat/completions", chat)).status == 200


async def test_a_key_can_carry_tighter_limits_than_its_owner(ohub: Hub) -> None:
    owner = await new_user(ohub)
    tight = await make_account(ohub, "", web=owner.web, limits={"requests_per_minute": 1})
    assert tight.key_id != owner.key_id
    chat = {"model": CHAT, "messages": user_says()}
    assert (await tight.api.post("/v1/chat/completions", chat)).status == 200
    assert_429(await tight.api.post("/v1/chat/completions", chat), "rate_limit_requests", "1 ")
    # The owner's other key is limited only by the owner's own (default) limits.
    assert (await owner.api.post("/v1/chat/completions", chat)).status == 200
    # A limited key is a restricted key: it cannot mint itself an unlimited one.
    minted = await tight.api.post("/api/keys", {"name": "escape"})
    assert (minted.status, minted.error_code) == (403, "key_scope")


async def test_default_limits_apply_to_everyone(ohub: Hub, alice: Account) -> None:
    bob = await new_user(ohub)
    put = await alice.web.put("/api/admin/limits", {"requests_per_minute": 1})
    assert put.status == 200, put.text
    try:
        assert put.body["limits"]["requests_per_minute"] == 1
        chat = {"model": CHAT, "messages": user_says()}
        assert (await bob.api.post("/v1/chat/completions", chat)).status == 200
        third = await bob.api.post("/v1/chat/completions", chat)
        assert_429(third, "rate_limit_requests", "1 requests per minute")
    finally:
        restored = await alice.web.put("/api/admin/limits", {"requests_per_minute": 0})
        assert restored.status == 200, restored.text


async def test_tokens_per_minute_quota(
    ohub: Hub, alice: Account, fake: FakeOllama, limiter_clock: FrozenClock
) -> None:
    bob = await new_user(ohub)
    await set_user_limits(alice.web, bob.user_id, tokens_per_minute=5)
    chat = {"model": CHAT, "messages": user_says()}
    first = await bob.api.post("/v1/chat/completions", chat)
    assert first.status == 200, first.text
    assert first.body["usage"]["total_tokens"] > 5
    calls = len(fake.calls("/api/chat"))
    second = await bob.api.post("/v1/chat/completions", chat)
    assert_429(second, "quota_tokens_per_minute", "tokens per minute quota of 5")
    assert int(second.headers["Retry-After"]) == 50  # the rest of this minute
    assert len(fake.calls("/api/chat")) == calls
    limiter_clock.now += 60  # the next minute has a quota of its own
    third = await bob.api.post("/v1/chat/completions", chat)
    assert third.status == 200, third.text


async def test_streamed_tokens_count_against_the_quota(
    ohub: Hub, alice: Account, limiter_clock: FrozenClock
) -> None:
    bob = await new_user(ohub)
    await set_user_limits(alice.web, bob.user_id, tokens_per_day=5)
    async with openai.AsyncOpenAI(
        base_url=f"{ohub.url}/v1", api_key=bob.key, max_retries=0
    ) as client:
        stream = await client.chat.completions.create(model=CHAT, messages=user_says(), stream=True)
        _ = [c async for c in stream]
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(model=CHAT, messages=user_says())
    assert caught.value.code == "quota_tokens_per_day"


async def test_two_instances_share_one_limit_through_redis(
    database_url: str, data_dir: Path, fake: FakeOllama, redis_url: str
) -> None:
    settings = hub_settings(database_url, data_dir, ollama={"url": fake.url}, redis_url=redis_url)
    async with started_hub(settings) as one, started_hub(settings) as two:
        admin = await make_account(one, "alice@example.com")
        bob = await make_account(one, "bob@example.com")
        await set_user_limits(admin.web, bob.user_id, requests_per_minute=3)
        on_two = two.client(api_key=bob.key)
        chat = {"model": CHAT, "messages": user_says()}
        assert (await bob.api.post("/v1/chat/completions", chat)).status == 200
        assert (await on_two.post("/v1/chat/completions", chat)).status == 200
        assert (await bob.api.post("/v1/chat/completions", chat)).status == 200
        assert_429(await on_two.post("/v1/chat/completions", chat), "rate_limit_requests", "3")
        assert_429(await bob.api.post("/v1/chat/completions", chat), "rate_limit_requests", "3")
