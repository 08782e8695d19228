"""BedrockProvider through the real aioboto3 client, over real sockets, against `FakeBedrock`."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aioboto3
import pytest
from botocore.eventstream import EventStreamBuffer

from providers.base import (
    ChatEnd,
    ChatEvent,
    ChatMessage,
    ChatOptions,
    ChatRequest,
    EmbedRequest,
    Image,
    ReasoningDelta,
    TextDelta,
    Usage,
)
from providers.bedrock import BedrockProvider
from providers.bedrock.backoff import ModelBackoff
from providers.errors import (
    AuthError,
    InvalidRequest,
    ModelAccessDenied,
    ModelNotFound,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    Unsupported,
    UpstreamError,
)
from tests.fakes.bedrock import FakeBedrock, Reply, foundation_model
from tests.fakes.eventstream import event_frame, exception_frame
from tests.net import free_port

PROFILE = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
SONNET_37 = "us.anthropic.claude-3-7-sonnet-20250219-v1:0"
HAIKU3 = "anthropic.claude-3-haiku-20240307-v1:0"
TITAN_TEXT = "amazon.titan-text-express-v1"
J2 = "ai21.j2-ultra-v1"
COMMAND = "cohere.command-text-v14"
TITAN_EMBED = "amazon.titan-embed-text-v2:0"
COHERE_EMBED = "cohere.embed-english-v3"

MakeProvider = Callable[..., BedrockProvider]


pytestmark = pytest.mark.usefixtures("aws_env")  # every test signs as botocore would


@pytest.fixture
async def fake() -> AsyncIterator[FakeBedrock]:
    async with FakeBedrock() as server:
        yield server


@pytest.fixture
async def make_provider(fake: FakeBedrock) -> AsyncIterator[MakeProvider]:
    made: list[BedrockProvider] = []

    def make(**overrides: Any) -> BedrockProvider:
        kwargs: dict[str, Any] = {
            "region": "us-east-1",
            "endpoint_url": fake.url,
            "max_attempts": 1,
            "retry_delay": 0,
        }
        made.append(BedrockProvider(**(kwargs | overrides)))
        return made[-1]

    yield make
    for provider in made:
        await provider.aclose()


@pytest.fixture
def provider(make_provider: MakeProvider) -> BedrockProvider:
    return make_provider()


def chat(model: str = PROFILE, *messages: ChatMessage, **kwargs: Any) -> ChatRequest:
    return ChatRequest(model=model, messages=messages or (ChatMessage("user", "Hi"),), **kwargs)


async def collect(provider: BedrockProvider, request: ChatRequest) -> list[ChatEvent]:
    return [event async for event in provider.chat(request)]


def text_of(events: list[ChatEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def end_of(events: list[ChatEvent]) -> ChatEnd:
    ends = [e for e in events if isinstance(e, ChatEnd)]
    assert len(ends) == 1 and events[-1] is ends[0], "exactly one ChatEnd, last"
    return ends[0]


# -- the fake's wire format ---------------------------------------------------------------------


def test_eventstream_frames_decode_with_botocore() -> None:
    buffer = EventStreamBuffer()  # validates both CRCs
    buffer.add_data(event_frame("messageStop", {"stopReason": "end_turn"}))
    buffer.add_data(exception_frame("throttlingException", "slow down"))
    event, exception = list(buffer)
    assert event.headers[":event-type"] == "messageStop"
    assert json.loads(event.payload) == {"stopReason": "end_turn"}
    assert exception.headers[":exception-type"] == "throttlingException"
    assert exception.to_response_dict()["status_code"] == 400


# -- Converse / ConverseStream -------------------------------------------------------------------


async def test_converse_stream_yields_deltas_in_order_then_one_chat_end(
    fake: FakeBedrock, provider: BedrockProvider
) -> None:
    fake.reply = Reply(text="The quick brown fox jumps", chunks=5)
    events = await collect(provider, chat())
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert [d.text for d in deltas] == fake.reply.pieces()
    assert len(deltas) == 5
    assert end_of(events).stop_reason == "stop"
    (call,) = fake.requests
    assert call.operation == "ConverseStream"
    # botocore percent-encodes the id in the URI; the fake decodes it back.
    assert call.raw_path == "/model/us.anthropic.claude-3-5-haiku-20241022-v1%3A0/converse-stream"
    assert call.model_id == PROFILE


async def test_non_streaming_request_uses_converse(
    fake: FakeBedrock, provider: BedrockProvider
) -> None:
    events = await collect(provider, chat(stream=False))
    assert events[0] == TextDelta(fake.reply.text)
    assert len(events) == 2
    assert end_of(events).metrics == {"latencyMs": fake.reply.latency_ms}
    assert [r.operation for r in fake.requests] == ["Converse"]


async def test_model_without_streaming_support_falls_back_to_converse(
    make_provider: MakeProvider,
) -> None:
    model = "example.no-stream-v1"
    async with FakeBedrock(
        models=[foundation_model(model, "No Stream", "Example", streaming=False)]
    ) as fake:
        provider = make_provider(endpoint_url=fake.url)
        (info,) = [m for m in await provider.list_models() if m.id == model]
        assert not info.capabilities.streaming
        events = await collect(provider, chat(model, stream=True))
    assert text_of(events) == fake.reply.text
    assert [r.operation for r in fake.calls("Converse")] == ["Converse"]
    assert fake.calls("ConverseStream") == []


@pytest.mark.parametrize(
    ("upstream", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
    ],
)
@pytest.mark.parametrize("stream", [True, False])
async def test_stop_reasons_and_usage_with_cache_tokens(
    fake: FakeBedrock, provider: BedrockProvider, upstream: str, expected: str, stream: bool
) -> None:
    fake.reply = Reply(
        stop_reason=upstream,
        input_tokens=30,
        output_tokens=9,
        cache_read_tokens=1000,
        cache_write_tokens=250,
        latency_ms=321,
    )
    end = end_of(await collect(provider, chat(stream=stream)))
    assert end.stop_reason == expected
    assert end.error is None
    # Bedrock counts cached tokens apart; the prompt is all of them, as OpenAI counts it.
    assert end.usage == Usage(
        input_tokens=30 + 1000 + 250, output_tokens=9, cached_tokens=1000, cache_write_tokens=250
    )
    assert end.metrics == {"latencyMs": 321}


async def test_options_system_and_images_reach_upstream_exactly(
    fake: FakeBedrock, provider: BedrockProvider
) -> None:
    png = b"\x89PNG\r\n\x1a\nfake"
    request = chat(
        HAIKU3,
        ChatMessage("system", "Be terse."),
        ChatMessage("user", "What is this?", images=(Image(png, "image/png"),)),
        options=ChatOptions(temperature=0.2, top_p=0.9, max_tokens=64, stop=("END",), seed=7),
    )
    await collect(provider, request)
    assert fake.requests[0].body == {
        "system": [{"text": "Be terse."}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "image": {
                            "format": "png",
                            "source": {"bytes": base64.b64encode(png).decode()},
                        }
                    },
                    {"text": "What is this?"},
                ],
            }
        ],
        "inferenceConfig": {
            "maxTokens": 64,
            "temperature": 0.2,
            "topP": 0.9,
            "stopSequences": ["END"],
        },
    }


async def test_unset_options_are_not_sent(fake: FakeBedrock, provider: BedrockProvider) -> None:
    await collect(provider, chat())
    assert fake.requests[0].body == {"messages": [{"role": "user", "content": [{"text": "Hi"}]}]}


async def test_titan_gets_the_system_prompt_folded_into_the_first_user_turn(
    fake: FakeBedrock, provider: BedrockProvider
) -> None:
    request = chat(
        TITAN_TEXT,
        ChatMessage("system", "You are a pirate."),
        ChatMessage("user", "Hello"),
        ChatMessage("assistant", "Arr"),
        ChatMessage("user", "Where is the treasure?"),
    )
    await collect(provider, request)
    body = fake.requests[0].body
    assert "system" not in body
    assert body["messages"] == [
        {"role": "user", "content": [{"text": "You are a pirate.\n\nHello"}]},
        {"role": "assistant", "content": [{"text": "Arr"}]},
        {"role": "user", "content": [{"text": "Where is the treasure?"}]},
    ]


async def test_consecutive_same_role_messages_are_merged(
    fake: FakeBedrock, provider: BedrockProvider
) -> None:
    request = chat(
        PROFILE,
        ChatMessage("user", "one"),
        ChatMessage("user", "two"),
        ChatMessage("assistant", "three"),
        ChatMessage("assistant", "four"),
        ChatMessage("user", "five"),
    )
    await collect(provider, request)
    assert fake.requests[0].body["messages"] == [
        {"role": "user", "content": [{"text": "one\n\ntwo"}]},
        {"role": "assistant", "content": [{"text": "three\n\nfour"}]},
        {"role": "user", "content": [{"text": "five"}]},
    ]


async def test_reasoning_content_becomes_reasoning_deltas(
    fake: FakeBedrock, provider: BedrockProvider
) -> None:
    fake.reply = Reply(text="42.", reasoning="Six times seven is forty-two.")
    for stream in (True, False):
        options = ChatOptions(reasoning_effort="low")
        events = await collect(provider, chat(SONNET_37, stream=stream, options=options))
        reasoning = [e for e in events if isinstance(e, ReasoningDelta)]
        assert "".join(r.text for r in reasoning) == fake.reply.reasoning
        assert events.index(reasoning[-1]) < next(
            i for i, e in enumerate(events) if isinstance(e, TextDelta)
        )
        assert text_of(events) == "42."


# -- native InvokeModel families -----------------------------------------------------------------

CONVERSATION = (
    ChatMessage("system", "Answer briefly."),
    ChatMessage("user", "Name a colour."),
    ChatMessage("assistant", "Blue."),
    ChatMessage("user", "Another."),
)
RENDERED = (
    "Answer briefly.\n\nUser: Name a colour.\n\nAssistant: Blue.\n\nUser: Another.\n\nAssistant:"
)
OPTIONS = ChatOptions(temperature=0.5, top_p=0.8, max_tokens=50, stop=("##",), seed=3)


async def test_jurassic_uses_invoke_model_with_its_native_body(
    fake: FakeBedrock, provider: BedrockProvider
) -> None:
    fake.reply = Reply(text="Green.", stop_reason="max_tokens", input_tokens=20, output_tokens=2)
    events = await collect(provider, chat(J2, *CONVERSATION, options=OPTIONS, stream=True))
    assert events[:-1] == [TextDelta("Green.")]
    end = end_of(events)
    assert end.stop_reason == "length"
    assert end.usage == Usage(input_tokens=20, output_tokens=2)
    (call,) = fake.requests
    assert call.operation == "InvokeModel"
    assert (call.headers["Content-Type"], call.headers["Accept"]) == ("application/json",) * 2
    assert call.body == {
        "prompt": RENDERED,
        "maxTokens": 50,
        "temperature": 0.5,
        "topP": 0.8,
        "stopSequences": ["##"],
    }


async def test_jurassic_usage_falls_back_to_its_token_lists(
    fake: FakeBedrock, provider: BedrockProvider
) -> None:
    fake.usage_headers = False
    fake.reply = Reply(input_tokens=7, output_tokens=3)
    end = end_of(await collect(provider, chat(J2)))
    assert end.usage == Usage(input_tokens=7, output_tokens=3, exact=True)


async def test_legacy_cohere_command_streams_with_its_native_body(
    fake: FakeBedrock, provider: BedrockProvider
) -> None:
    fake.reply = Reply(text="Red, or perhaps green.", chunks=3, input_tokens=21, output_tokens=5)
    events = await collect(provider, chat(COMMAND, *CONVERSATION, options=OPTIONS))
    assert [e.text for e in events if isinstance(e, TextDelta)] == fake.reply.pieces()
    end = end_of(events)
    assert end.stop_reason == "stop"
    assert end.usage == Usage(input_tokens=21, output_tokens=5)
    assert end.metrics["invocationLatency"] == fake.reply.latency_ms
    (call,) = fake.requests
    assert call.operation == "InvokeModelWithResponseStream"
    # This operation's `accept` travels in its own header (botocore's service model).
    assert call.headers["X-Amzn-Bedrock-Accept"] == "application/json"
    assert call.body == {
        "prompt": RENDERED,
        "max_tokens": 50,
        "temperature": 0.5,
        "p": 0.8,
        "stop_sequences": ["##"],
        "stream": True,
    }


async def test_legacy_cohere_command_without_streaming_uses_invoke_model(
    fake: FakeBedrock, provider: BedrockProvider
) -> None:
    fake.reply = Reply(text="Purple.", stop_reason="max_tokens")
    events = await collect(provider, chat(COMMAND, stream=False))
    assert events[:-1] == [TextDelta("Purple.")]
    assert end_of(events).stop_reason == "length"
    (call,) = fake.requests
    assert call.operation == "InvokeModel"
    # Bedrock's default for this body is 20 tokens: every body says how many it may have.
    assert call.body == {"prompt": "User: Hi\n\nAssistant:", "max_tokens": 2048, "stream": False}


async def test_native_usage_is_estimated_when_bedrock_reports_none(
    fake: FakeBedrock, provider: BedrockProvider
) -> None:
    fake.usage_headers = False
    fake.reply = Reply(text="x" * 40)
    end = end_of(await collect(provider, chat(COMMAND, ChatMessage("user", "y" * 80))))
    prompt = "User: " + "y" * 80 + "\n\nAssistant:"
    assert end.usage == Usage(
        input_tokens=math.ceil(len(prompt) / 4), output_tokens=10, exact=False
    )


# -- catalog -------------------------------------------------------------------------------------


async def test_list_models_with_capabilities_and_paged_inference_profiles(
    fake: FakeBedrock, provider: BedrockProvider
) -> None:
    models = {m.id: m for m in await provider.list_models()}
    assert set(models) == {
        HAIKU3,
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        "amazon.nova-lite-v1:0",
        TITAN_TEXT,
        J2,
        COMMAND,  # LEGACY lifecycle is still usable
        "cohere.command-r-v1:0",
        "meta.llama3-8b-instruct-v1:0",
        TITAN_EMBED,
        COHERE_EMBED,
        PROFILE,
        "us.anthropic.claude-3-7-sonnet-20250219-v1:0",  # profile-only model
        "us.amazon.nova-lite-v1:0",
        "us.meta.llama3-8b-instruct-v1:0",
    }
    # Five profiles at two per page: every page was fetched, each with the previous token;
    # then the account's own (application) profiles, which an unfiltered listing leaves out.
    pages = fake.calls("ListInferenceProfiles")
    assert [(p.query.get("type"), p.query.get("nextToken")) for p in pages] == [
        (None, None),
        (None, "2"),
        (None, "4"),
        ("APPLICATION", None),
    ]
    assert (models[COMMAND].lifecycle, models[HAIKU3].lifecycle) == ("LEGACY", "ACTIVE")
    assert models["cohere.command-r-v1:0"].capabilities.tools
    assert not models[TITAN_TEXT].capabilities.tools

    assert models[HAIKU3].capabilities.vision
    assert models[HAIKU3].context_length == 200_000
    assert not models[TITAN_TEXT].capabilities.system_prompt
    assert not models[J2].capabilities.streaming
    assert models[COMMAND].capabilities.streaming
    sonnet = models["us.anthropic.claude-3-7-sonnet-20250219-v1:0"]
    assert sonnet.capabilities.vision and sonnet.capabilities.reasoning
    assert sonnet.name == "US Claude 3.7 Sonnet"
    for embedder in (TITAN_EMBED, COHERE_EMBED):
        caps = models[embedder].capabilities
        assert caps.embeddings and not caps.chat
    assert all(m.provider == "bedrock" for m in models.values())


async def test_allow_list_limits_listing_and_use(
    fake: FakeBedrock, make_provider: MakeProvider
) -> None:
    provider = make_provider(allowed_models=[PROFILE, TITAN_EMBED])
    assert sorted(m.id for m in await provider.list_models()) == sorted([PROFILE, TITAN_EMBED])
    with pytest.raises(ModelNotFound):
        await collect(provider, chat(HAIKU3))
    with pytest.raises(ModelNotFound):
        await provider.embed(EmbedRequest(COHERE_EMBED, ["x"]))
    assert fake.calls("ConverseStream") == [] and fake.calls("InvokeModel") == []


# -- errors --------------------------------------------------------------------------------------


async def test_unknown_model_is_model_not_found(provider: BedrockProvider) -> None:
    with pytest.raises(ModelNotFound, match=r"nope\.unknown-v1"):
        await collect(provider, chat("nope.unknown-v1"))


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (500, "InternalServerException", UpstreamError),
        (400, "ValidationException", InvalidRequest),
        (404, "ResourceNotFoundException", ModelNotFound),
        (503, "ServiceUnavailableException", ProviderUnavailable),
        (429, "ModelNotReadyException", ProviderUnavailable),
        (408, "ModelTimeoutException", UpstreamError),
    ],
)
async def test_http_errors_map_to_provider_errors(
    fake: FakeBedrock,
    provider: BedrockProvider,
    status: int,
    code: str,
    expected: type[ProviderError],
) -> None:
    fake.fail_next(status=status, error_type=code, message=f"{code} from the fake")
    with pytest.raises(expected, match=f"{code} from the fake") as info:
        await collect(provider, chat())
    assert type(info.value) is expected


async def test_upstream_500_is_retried_then_raised_as_upstream_error(
    fake: FakeBedrock, make_provider: MakeProvider
) -> None:
    fake.fail_next(5)
    with pytest.raises(UpstreamError):
        await collect(make_provider(max_attempts=2), chat())
    assert len(fake.calls("ConverseStream")) == 2


async def test_connection_refused_is_provider_unavailable_at_once(
    make_provider: MakeProvider,
) -> None:
    # A connect timeout no test could wait out: a refusal is reported as one, never waited on.
    provider = make_provider(
        endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=2, connect_timeout=3600
    )
    with pytest.raises(ProviderUnavailable):
        await collect(provider, chat())
    assert provider.attempts.retries == 1  # unreachable is transient: one more try, no more
    with pytest.raises(ProviderUnavailable):
        await provider.list_models()
    health = await provider.health()
    assert not health.ok and health.detail


async def test_access_denied_is_a_permanent_403_with_console_hint(
    fake: FakeBedrock, provider: BedrockProvider
) -> None:
    fake.denied_models.add(PROFILE)
    with pytest.raises(
        ModelAccessDenied, match="request model access in the Bedrock console"
    ) as info:
        await collect(provider, chat())
    # Not a 5xx: SDKs would retry it, and it will not go away until an admin acts.
    assert info.value.status == 403
    assert len(fake.calls("ConverseStream")) == 1


async def test_signature_errors_do_not_echo_credentials(
    fake: FakeBedrock, provider: BedrockProvider
) -> None:
    # AWS echoes the canonical request (with the session token header) and, for a malformed
    # Authorization header, the header itself (with the access key id).
    message = (
        "The request signature we calculated does not match the signature you provided."
        " Check your AWS Secret Access Key and signing method.\n\n"
        "The Canonical String for this request should have been\n'POST\n/model/x/converse\n\n"
        "host:bedrock-runtime.us-east-1.amazonaws.com\nx-amz-security-token:fake-token\n'\n\n"
        "The String-to-Sign should have been\n'AWS4-HMAC-SHA256\n20250101T000000Z\n'"
    )
    fake.fail_next(status=403, error_type="InvalidSignatureException", message=message)
    fake.fail_next(
        status=403,
        error_type="IncompleteSignatureException",
        message="'x' not a valid key=value pair in Authorization header: "
        "'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20250101/us-east-1/bedrock'.",
    )
    errors: list[str] = []
    for _ in range(2):
        with pytest.raises(AuthError) as info:
            await collect(provider, chat())
        errors.append(info.value.message)
    assert "signature we calculated does not match" in errors[0]
    assert not any("fake-token" in e or "AKIAIOSFODNN7EXAMPLE" in e for e in errors), errors


class Clock:
    """Time for the provider's throttle cool-down, moved by the test instead of slept."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(provider: BedrockProvider) -> Clock:
    clock = Clock()
    provider.backoff = ModelBackoff(max_attempts=3, retry_delay=0, clock=clock)
    return clock


@pytest.mark.parametrize(("header", "retry_after"), [("7", 7.0), (None, 1.0)])
async def test_a_throttled_call_is_not_retried_and_says_when_to_come_back(
    fake: FakeBedrock,
    provider: BedrockProvider,
    clock: Clock,
    header: str | None,
    retry_after: float,
) -> None:
    fake.throttle_next(3, retry_after=header)
    with pytest.raises(RateLimited) as info:
        await collect(provider, chat())
    assert info.value.retry_after == retry_after
    # One upstream attempt: the caller's SDK retries after our 429, ours would stack on it.
    assert len(fake.calls("ConverseStream")) == 1


async def test_a_throttled_model_cools_down_alone(
    fake: FakeBedrock, provider: BedrockProvider, clock: Clock
) -> None:
    fake.throttle_model(PROFILE)
    with pytest.raises(RateLimited):
        await collect(provider, chat(PROFILE))
    # While it cools down, calls to it fail fast, without adding to the pressure upstream...
    with pytest.raises(RateLimited) as info:
        await collect(provider, chat(PROFILE))
    assert 0 < (info.value.retry_after or 0) <= 1.0
    assert len(fake.calls("ConverseStream")) == 1
    # ...and every other model is served as if nothing happened.
    assert text_of(await collect(provider, chat(HAIKU3))) == fake.reply.text
    assert [c.model_id for c in fake.calls("ConverseStream")] == [PROFILE, HAIKU3]
    clock.now += 1.0
    assert text_of(await collect(provider, chat(PROFILE))) == fake.reply.text


async def test_repeated_throttles_double_the_cool_down_until_a_success(
    fake: FakeBedrock, provider: BedrockProvider, clock: Clock
) -> None:
    waits = []
    for _ in range(3):
        fake.throttle_model(PROFILE)
        with pytest.raises(RateLimited) as info:
            await collect(provider, chat())
        waits.append(info.value.retry_after)
        clock.now += info.value.retry_after or 0
    assert waits == [1.0, 2.0, 4.0]
    await collect(provider, chat())
    fake.throttle_model(PROFILE)
    with pytest.raises(RateLimited) as info:
        await collect(provider, chat())
    assert info.value.retry_after == 1.0


async def test_a_throttle_mid_stream_cools_the_model_down(
    fake: FakeBedrock, provider: BedrockProvider, clock: Clock
) -> None:
    fake.reply = Reply(text="abcdefghij", chunks=5)
    fake.stream_exception = ("throttlingException", "Too many tokens, please wait.")
    fake.exception_after_chunks = 2
    end = end_of(await collect(provider, chat()))
    assert end.stop_reason == "error"
    fake.stream_exception = None
    with pytest.raises(RateLimited):
        await collect(provider, chat())
    assert len(fake.calls("ConverseStream")) == 1


@pytest.mark.parametrize(
    "exception",
    [
        "modelStreamErrorException",
        "internalServerException",
        "throttlingException",
        "validationException",
        "serviceUnavailableException",
    ],
)
@pytest.mark.parametrize("model", [PROFILE, COMMAND])
async def test_mid_stream_exception_ends_with_error_after_partial_text(
    fake: FakeBedrock, provider: BedrockProvider, exception: str, model: str
) -> None:
    fake.reply = Reply(text="abcdefghij", chunks=5)
    fake.stream_exception = (exception, "the model fell over")
    fake.exception_after_chunks = 2
    events = await collect(provider, chat(model))
    assert text_of(events) == "abcd"
    end = end_of(events)
    assert end.stop_reason == "error"
    assert end.error and "the model fell over" in end.error
    assert not end.usage.exact


@pytest.mark.parametrize("model", [PROFILE, COMMAND])
async def test_connection_drop_mid_stream_ends_with_error_after_partial_text(
    fake: FakeBedrock, provider: BedrockProvider, model: str
) -> None:
    fake.reply = Reply(text="abcdefghij", chunks=5)
    fake.drop_after_chunks = 2
    events = await collect(provider, chat(model))
    assert text_of(events) == "abcd"
    end = end_of(events)
    assert end.stop_reason == "error" and end.error


async def test_read_timeout_before_the_response_is_upstream_error(
    fake: FakeBedrock, make_provider: MakeProvider
) -> None:
    fake.response_delay = 3600  # no answer within any test's lifetime
    with pytest.raises(UpstreamError, match="timed out") as info:
        await collect(make_provider(read_timeout=0.3, max_attempts=3), chat(stream=False))
    assert info.value.code == "upstream_timeout"  # as the Ollama provider reports it
    # A timeout already waited its full length: not retried.
    assert len(fake.calls("Converse")) == 1


async def test_read_timeout_mid_stream_ends_with_error_after_partial_text(
    fake: FakeBedrock, make_provider: MakeProvider
) -> None:
    fake.chunk_delay = 10
    events = await collect(make_provider(read_timeout=0.3), chat())
    assert text_of(events) == fake.reply.pieces()[0]
    end = end_of(events)
    assert end.stop_reason == "error"
    assert end.error and "timed out" in end.error


@pytest.mark.parametrize("model", [PROFILE, COMMAND])
async def test_closing_the_consumer_closes_the_upstream_stream(
    fake: FakeBedrock, provider: BedrockProvider, model: str
) -> None:
    fake.reply = Reply(text="x" * 400, chunks=200)
    fake.chunk_delay = 0.05
    events = provider.chat(chat(model))
    assert isinstance(await anext(events), TextDelta)
    await events.aclose()  # type: ignore[attr-defined]
    await asyncio.wait_for(fake.disconnected.wait(), timeout=5)


async def test_one_client_and_connection_serve_many_requests(
    fake: FakeBedrock, provider: BedrockProvider
) -> None:
    for _ in range(3):
        await collect(provider, chat(stream=False))
    ports = {r.client_port for r in fake.requests}
    assert len(ports) == 1


async def test_concurrent_first_calls_create_one_client_per_service(
    provider: BedrockProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[str] = []
    real = aioboto3.Session.client

    @contextlib.asynccontextmanager
    async def client(self: aioboto3.Session, service: str, **kwargs: Any) -> AsyncIterator[Any]:
        created.append(service)
        await asyncio.sleep(0.01)  # as when credentials come over the network (ECS task role)
        async with real(self, service, **kwargs) as made:
            yield made

    monkeypatch.setattr(aioboto3.Session, "client", client)
    await asyncio.gather(
        *(collect(provider, chat()) for _ in range(6)),
        *(provider.list_models() for _ in range(3)),
    )
    assert sorted(created) == ["bedrock", "bedrock-runtime"]


# -- embeddings ----------------------------------------------------------------------------------


async def test_titan_embeddings_one_call_per_input(
    fake: FakeBedrock, provider: BedrockProvider
) -> None:
    result = await provider.embed(
        EmbedRequest(TITAN_EMBED, ["alpha", "beta", "gamma"], dimensions=512)
    )
    assert [len(v) for v in result.vectors] == [512, 512, 512]
    assert result.vectors[0] != result.vectors[1]
    assert [r.body for r in fake.calls("InvokeModel")] == [
        {"inputText": text, "normalize": True, "dimensions": 512}
        for text in ("alpha", "beta", "gamma")
    ]
    assert result.usage.input_tokens == 3 and result.usage.exact


async def test_cohere_embeddings_in_one_batch(fake: FakeBedrock, provider: BedrockProvider) -> None:
    fake.reply = Reply(input_tokens=9)
    result = await provider.embed(EmbedRequest(COHERE_EMBED, ["alpha", "beta"]))
    assert [len(v) for v in result.vectors] == [1024, 1024]
    (call,) = fake.calls("InvokeModel")
    assert call.body == {"texts": ["alpha", "beta"], "input_type": "search_document"}
    assert result.usage == Usage(input_tokens=9)


@pytest.mark.parametrize(
    "call",
    [
        lambda p: p.embed(EmbedRequest(PROFILE, ["x"])),
        lambda p: collect(p, chat(TITAN_EMBED)),
    ],
    ids=["embed-on-chat-model", "chat-on-embedding-model"],
)
async def test_wrong_kind_of_model_is_unsupported(
    fake: FakeBedrock, provider: BedrockProvider, call: Callable[[BedrockProvider], Awaitable[Any]]
) -> None:
    with pytest.raises(Unsupported):
        await call(provider)
    assert fake.requests == []


# -- health --------------------------------------------------------------------------------------


async def test_health_is_ok_and_cached(fake: FakeBedrock, provider: BedrockProvider) -> None:
    first = await provider.health()
    second = await provider.health()
    assert first.ok and first.latency_ms is not None
    assert second == first
    assert len(fake.calls("ListFoundationModels")) == 1


async def test_health_reports_upstream_failure(
    fake: FakeBedrock, provider: BedrockProvider
) -> None:
    fake.fail_next(status=403, error_type="AccessDeniedException", message="not allowed")
    health = await provider.health()
    assert not health.ok
    assert health.detail and "not allowed" in health.detail
