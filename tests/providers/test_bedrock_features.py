"""BedrockProvider's tools, structured output, reasoning, guardrails, prompt caching and the
native families' fidelity, through the real aioboto3 client against `FakeBedrock`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from providers.base import (
    ChatEnd,
    ChatEvent,
    ChatMessage,
    ChatOptions,
    ChatRequest,
    ReasoningDelta,
    ResponseFormat,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
)
from providers.bedrock import BedrockProvider
from providers.errors import InvalidRequest, Unsupported
from tests.fakes.bedrock import (
    BLOCKED_MESSAGE,
    DEFAULT_PROFILES,
    FakeBedrock,
    Guardrail,
    Reply,
    application_profile,
)

CLAUDE = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
SONNET_37 = "us.anthropic.claude-3-7-sonnet-20250219-v1:0"
COMMAND_R = "cohere.command-r-v1:0"
COMMAND = "cohere.command-text-v14"
J2 = "ai21.j2-ultra-v1"
TITAN = "amazon.titan-text-express-v1"
LLAMA3 = "meta.llama3-8b-instruct-v1:0"
NOVA = "us.amazon.nova-lite-v1:0"
WEATHER = Tool(
    "get_weather",
    "Get the weather in a given city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
TIME = Tool("get_time", None, {"type": "object", "properties": {"tz": {"type": "string"}}})
SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}
ASK = ChatMessage("user", "What is the weather in Paris?")
LONG_WORDS = " ".join(f"word{i}" for i in range(30))

MakeProvider = Callable[..., BedrockProvider]


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFAKEFAKEFAKE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
async def fake() -> AsyncIterator[FakeBedrock]:
    profiles = [*DEFAULT_PROFILES, application_profile("a1b2c3d4e5f6", "team-claude", CLAUDE[3:])]
    async with FakeBedrock(profiles=profiles) as server:
        server.guardrails["gr-fake01"] = Guardrail(word="casino", version="3")
        yield server


@pytest.fixture
async def make_provider(fake: FakeBedrock) -> AsyncIterator[MakeProvider]:
    made: list[BedrockProvider] = []

    def make(**overrides: Any) -> BedrockProvider:
        kwargs: dict[str, Any] = {"region": "us-east-1", "endpoint_url": fake.url}
        made.append(BedrockProvider(**(kwargs | {"max_attempts": 1} | overrides)))
        return made[-1]

    yield make
    for provider in made:
        await provider.aclose()


@pytest.fixture
def provider(make_provider: MakeProvider) -> BedrockProvider:
    return make_provider()


def ask(model: str = CLAUDE, *messages: ChatMessage, **kwargs: Any) -> ChatRequest:
    return ChatRequest(model=model, messages=messages or (ASK,), **kwargs)


async def collect(provider: BedrockProvider, request: ChatRequest) -> list[ChatEvent]:
    return [event async for event in provider.chat(request)]


def text_of(events: list[ChatEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def end_of(events: list[ChatEvent]) -> ChatEnd:
    assert isinstance(events[-1], ChatEnd)
    return events[-1]


def calls_of(events: list[ChatEvent]) -> list[tuple[int, str | None, str | None, str]]:
    """(index, id, name, arguments) per call, the argument pieces joined as a client would."""
    calls: dict[int, list[Any]] = {}
    for event in events:
        if isinstance(event, ToolCallDelta):
            entry = calls.setdefault(event.index, [event.index, event.id, event.name, ""])
            entry[3] += event.arguments
    return [tuple(c) for c in calls.values()]  # type: ignore[misc]


def last(fake: FakeBedrock) -> Any:
    return fake.requests[-1]


# -- tools ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
async def test_tool_calls_from_claude_streamed_and_whole(
    fake: FakeBedrock, provider: BedrockProvider, stream: bool
) -> None:
    fake.reply = Reply(tool_calls=[("get_weather", {"city": "Paris"}), ("get_time", {"tz": "CET"})])
    events = await collect(provider, ask(tools=(WEATHER, TIME), stream=stream))
    calls = calls_of(events)
    assert [(i, name, json.loads(args)) for i, _, name, args in calls] == [
        (0, "get_weather", {"city": "Paris"}),
        (1, "get_time", {"tz": "CET"}),
    ]
    assert all(call_id and call_id.startswith("tooluse_") for _, call_id, _, _ in calls)
    if stream:  # arguments arrive in pieces, the first piece of each call carrying its name
        pieces = [e for e in events if isinstance(e, ToolCallDelta)]
        assert len(pieces) > 2 and pieces[0].name and not pieces[1].name
    assert end_of(events).stop_reason == "tool_calls"
    assert text_of(events) == ""
    request = last(fake)
    assert request.operation == ("ConverseStream" if stream else "Converse")
    assert request.body["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "inputSchema": {"json": WEATHER.parameters},
                    "description": "Get the weather in a given city",
                }
            },
            {"toolSpec": {"name": "get_time", "inputSchema": {"json": TIME.parameters}}},
        ],
        "toolChoice": {"auto": {}},
    }


async def test_a_tool_round_trip_sends_tool_use_and_tool_result_blocks(
    fake: FakeBedrock, provider: BedrockProvider
) -> None:
    fake.reply = Reply(text="It is sunny in Paris.", tool_calls=[("get_weather", {"city": "X"})])
    history = (
        ASK,
        ChatMessage(
            "assistant",
            "Let me look.",
            tool_calls=(ToolCall("call.1/abc", "get_weather", '{"city": "Paris"}'),),
        ),
        ChatMessage("tool", "sunny, 24 C", tool_call_id="call.1/abc"),
    )
    events = await collect(provider, ask(CLAUDE, *history, tools=(WEATHER,)))
    assert text_of(events) == "It is sunny in Paris."
    assert end_of(events).stop_reason == "stop"
    assert last(fake).body["messages"] == [
        {"role": "user", "content": [{"text": "What is the weather in Paris?"}]},
        {
            "role": "assistant",
            "content": [
                {"text": "Let me look."},
                # An OpenAI-style id Bedrock's pattern refuses is made to fit, both sides alike.
                {
                    "toolUse": {
                        "toolUseId": "call_1_abc",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    }
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": "call_1_abc", "content": [{"text": "sunny, 24 C"}]}}
            ],
        },
    ]


async def test_tool_history_without_tools_is_told_as_text(
    fake: FakeBedrock, provider: BedrockProvider
) -> None:
    history = (
        ASK,
        ChatMessage(
            "assistant", "", tool_calls=(ToolCall("c1", "get_weather", '{"city":"Paris"}'),)
        ),
        ChatMessage("tool", "sunny", tool_call_id="c1", name="get_weather"),
        ChatMessage("user", "Thanks. And tomorrow?"),
    )
    for choice in (ToolChoice("auto"), ToolChoice("none")):
        tools = (WEATHER,) if choice.mode == "none" else ()
        events = await collect(provider, ask(CLAUDE, *history, tools=tools, tool_choice=choice))
        assert end_of(events).stop_reason == "stop"
        body = last(fake).body
        assert "toolConfig" not in body  # Bedrock refuses tool blocks without one
        assert "toolUse" not in json.dumps(body) and "toolResult" not in json.dumps(body)
        assert body["messages"][1]["content"][0]["text"].startswith("[called tool get_weather")


async def test_models_that_cannot_stream_tool_use_are_called_whole_and_replayed(
    fake: FakeBedrock, provider: BedrockProvider
) -> None:
    fake.reply = Reply(tool_calls=[("get_weather", {"city": "Paris"})])
    events = await collect(provider, ask(COMMAND_R, tools=(WEATHER,), stream=True))
    assert [(name, json.loads(args)) for _, _, name, args in calls_of(events)] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert end_of(events).stop_reason == "tool_calls"
    assert [r.operation for r in fake.requests] == ["Converse"]
    # Without tools the same model streams.
    await collect(provider, ask(COMMAND_R, stream=True))
    assert last(fake).operation == "ConverseStream"


@pytest.mark.parametrize("model", [TITAN, LLAMA3, COMMAND, J2])
async def test_models_without_tool_use_refuse_tools_before_calling(
    fake: FakeBedrock, provider: BedrockProvider, model: str
) -> None:
    with pytest.raises(Unsupported, match="tools"):
        await collect(provider, ask(model, tools=(WEATHER,)))
    assert fake.requests == []


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        (ToolChoice("required"), {"any": {}}),
        (ToolChoice("function", "get_time"), {"tool": {"name": "get_time"}}),
    ],
)
async def test_forced_tool_choice(
    fake: FakeBedrock, provider: BedrockProvider, choice: ToolChoice, wire: dict[str, Any]
) -> None:
    events = await collect(provider, ask(CLAUDE, tools=(WEATHER, TIME), tool_choice=choice))
    assert last(fake).body["toolConfig"]["toolChoice"] == wire
    (call,) = calls_of(events)
    assert call[2] == ("get_weather" if choice.mode == "required" else "get_time")
    # Command R has tools but no forced choice: refused, not sent to fail.
    with pytest.raises(Unsupported, match="tool_choice"):
        await collect(provider, ask(COMMAND_R, tools=(WEATHER, TIME), tool_choice=choice))


async def test_parallel_tool_calls_false_keeps_the_first_call(
    fake: FakeBedrock, provider: BedrockProvider
) -> None:
    fake.reply = Reply(tool_calls=[("get_weather", {"city": "Paris"}), ("get_time", {"tz": "CET"})])
    for stream in (True, False):
        request = ask(tools=(WEATHER, TIME), parallel_tool_calls=False, stream=stream)
        assert [c[2] for c in calls_of(await collect(provider, request))] == ["get_weather"]


# -- structured output ----------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
async def test_json_schema_is_a_forced_tool_whose_input_is_the_answer(
    fake: FakeBedrock, provider: BedrockProvider, stream: bool
) -> None:
    form = ResponseFormat("json_schema", SCHEMA, "person", strict=True)
    events = await collect(provider, ask(NOVA, response_format=form, stream=stream))
    assert json.loads(text_of(events)) == {"name": "text", "age": 1}
    assert not [e for e in events if isinstance(e, ToolCallDelta)]
    assert end_of(events).stop_reason == "stop"
    config = last(fake).body["toolConfig"]
    assert config["toolChoice"] == {"tool": {"name": "person"}}
    assert config["tools"][0]["toolSpec"]["inputSchema"] == {"json": SCHEMA}


async def test_json_object_mode_asks_for_any_object(
    fake: FakeBedrock, provider: BedrockProvider
) -> None:
    events = await collect(provider, ask(response_format=ResponseFormat("json_object")))
    assert isinstance(json.loads(text_of(events)), dict)
    spec = last(fake).body["toolConfig"]["tools"][0]["toolSpec"]
    assert spec["name"] == "json_response" and spec["inputSchema"] == {"json": {"type": "object"}}


@pytest.mark.parametrize("model", [COMMAND_R, LLAMA3, TITAN])
async def test_structured_output_without_a_documented_mechanism_is_refused(
    fake: FakeBedrock, provider: BedrockProvider, model: str
) -> None:
    with pytest.raises(Unsupported, match="response_format"):
        await collect(provider, ask(model, response_format=ResponseFormat("json_object")))
    assert fake.requests == []


# -- reasoning ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
async def test_reasoning_effort_turns_on_claude_extended_thinking(
    fake: FakeBedrock, provider: BedrockProvider, stream: bool
) -> None:
    fake.reply = Reply(text="42.", reasoning="Six sevens.")
    options = ChatOptions(reasoning_effort="high")
    events = await collect(provider, ask(SONNET_37, options=options, stream=stream))
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == "Six sevens."
    assert text_of(events) == "42."
    body = last(fake).body
    assert body["additionalModelRequestFields"] == {
        "thinking": {"type": "enabled", "budget_tokens": 16384}
    }
    assert body["inferenceConfig"]["maxTokens"] == 16384 + 8192


async def test_reasoning_fits_its_budget_under_max_tokens(
    fake: FakeBedrock, provider: BedrockProvider
) -> None:
    options = ChatOptions(reasoning_effort="medium", max_tokens=4000)
    await collect(provider, ask(SONNET_37, options=options))
    body = last(fake).body
    assert body["additionalModelRequestFields"]["thinking"]["budget_tokens"] == 3999
    assert body["inferenceConfig"]["maxTokens"] == 4000


async def test_reasoning_off_sends_no_thinking(
    fake: FakeBedrock, provider: BedrockProvider
) -> None:
    fake.reply = Reply(reasoning="hidden")
    events = await collect(provider, ask(SONNET_37, options=ChatOptions(reasoning_effort="none")))
    assert "additionalModelRequestFields" not in last(fake).body
    assert not [e for e in events if isinstance(e, ReasoningDelta)]


@pytest.mark.parametrize(
    ("options", "error"),
    [
        (ChatOptions(reasoning_effort="low", temperature=0.3), InvalidRequest),
        (ChatOptions(reasoning_effort="low", max_tokens=1000), InvalidRequest),
    ],
)
async def test_reasoning_with_settings_claude_refuses_is_a_400_before_calling(
    fake: FakeBedrock, provider: BedrockProvider, options: ChatOptions, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await collect(provider, ask(SONNET_37, options=options))
    assert fake.requests == []


async def test_reasoning_on_a_model_that_cannot_is_unsupported(
    fake: FakeBedrock, provider: BedrockProvider
) -> None:
    with pytest.raises(Unsupported, match="reason"):
        await collect(provider, ask(CLAUDE, options=ChatOptions(reasoning_effort="high")))
    assert fake.requests == []


async def test_mid_tool_loop_claude_answers_without_thinking(
    fake: FakeBedrock, provider: BedrockProvider
) -> None:
    history = (
        ASK,
        ChatMessage("assistant", "", tool_calls=(ToolCall("c1", "get_weather", "{}"),)),
        ChatMessage("tool", "sunny", tool_call_id="c1"),
    )
    request = ask(
        SONNET_37, *history, tools=(WEATHER,), options=ChatOptions(reasoning_effort="high")
    )
    events = await collect(provider, request)
    assert end_of(events).stop_reason == "stop"
    assert "additionalModelRequestFields" not in last(fake).body


# -- sampling ranges ------------------------------------------------------------------------------


async def test_out_of_range_values_are_refused_with_bedrocks_range(
    fake: FakeBedrock, provider: BedrockProvider
) -> None:
    with pytest.raises(InvalidRequest, match="0 to 1") as info:
        await collect(provider, ask(options=ChatOptions(temperature=1.5)))
    assert info.value.code == "out_of_range"
    with pytest.raises(InvalidRequest, match=r"'\|'.*'User:'"):
        await collect(provider, ask(TITAN, options=ChatOptions(stop=("</stop>",))))
    assert fake.requests == []
    await collect(provider, ask(TITAN, options=ChatOptions(stop=("User:", "||"))))
    assert last(fake).body["inferenceConfig"]["stopSequences"] == ["User:", "||"]


async def test_max_tokens_is_clamped_to_the_models_maximum_and_top_k_reaches_claude(
    fake: FakeBedrock, provider: BedrockProvider
) -> None:
    await collect(provider, ask(options=ChatOptions(max_tokens=100_000, top_k=40)))
    body = last(fake).body
    assert body["inferenceConfig"]["maxTokens"] == 8192  # Claude 3.5 Haiku's maximum
    assert body["additionalModelRequestFields"] == {"top_k": 40}


async def test_titan_gets_a_useful_default_max_tokens(
    fake: FakeBedrock, make_provider: MakeProvider
) -> None:
    await collect(make_provider(default_max_tokens=3000), ask(TITAN))
    assert last(fake).body["inferenceConfig"]["maxTokens"] == 3000


# -- guardrails -----------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
async def test_a_guardrail_intervention_ends_as_content_filter(
    fake: FakeBedrock, make_provider: MakeProvider, stream: bool
) -> None:
    provider = make_provider(guardrail_id="gr-fake01", guardrail_version="3")
    fine = await collect(provider, ask(stream=stream))
    assert end_of(fine).stop_reason == "stop"
    blocked = await collect(
        provider, ask(CLAUDE, ChatMessage("user", "Best casino odds?"), stream=stream)
    )
    assert text_of(blocked) == BLOCKED_MESSAGE
    assert end_of(blocked).stop_reason == "content_filter"
    config = last(fake).body["guardrailConfig"]
    assert config["guardrailIdentifier"] == "gr-fake01" and config["guardrailVersion"] == "3"
    assert config["trace"] == "enabled"
    if stream:
        assert config["streamProcessingMode"] == "sync"


@pytest.mark.parametrize("stream", [True, False])
async def test_the_guardrail_also_guards_the_native_families(
    fake: FakeBedrock, make_provider: MakeProvider, stream: bool
) -> None:
    provider = make_provider(guardrail_id="gr-fake01", guardrail_version="3")
    events = await collect(provider, ask(COMMAND, ChatMessage("user", "casino?"), stream=stream))
    assert end_of(events).stop_reason == "content_filter"
    assert text_of(events) == BLOCKED_MESSAGE
    assert last(fake).headers["X-Amzn-Bedrock-GuardrailIdentifier"] == "gr-fake01"


async def test_no_guardrail_unless_configured(fake: FakeBedrock, provider: BedrockProvider) -> None:
    events = await collect(provider, ask(CLAUDE, ChatMessage("user", "casino?")))
    assert end_of(events).stop_reason == "stop"
    assert "guardrailConfig" not in last(fake).body


# -- prompt caching -------------------------------------------------------------------------------


async def test_prompt_caching_marks_the_system_prompt_and_a_long_history(
    fake: FakeBedrock, make_provider: MakeProvider
) -> None:
    provider = make_provider(prompt_caching=True)
    system = ChatMessage("system", "You are a meticulous assistant. " * 40)
    history = [ChatMessage("user", "Summarise this: " + "lorem ipsum " * 400)]
    first = end_of(await collect(provider, ask(CLAUDE, system, *history)))
    body = last(fake).body
    assert body["system"][-1] == {"cachePoint": {"type": "default"}}
    assert body["messages"][-1]["content"][-1] == {"cachePoint": {"type": "default"}}
    assert first.usage.cache_write_tokens > 0 and first.usage.cached_tokens == 0
    # The next turn's prefix is the cached one: read from the cache, counted as prompt tokens.
    history += [ChatMessage("assistant", "It is lorem ipsum."), ChatMessage("user", "Shorter?")]
    second = end_of(await collect(provider, ask(CLAUDE, system, *history)))
    assert second.usage.cached_tokens >= first.usage.cache_write_tokens
    assert second.usage.input_tokens > second.usage.cached_tokens


async def test_prompt_caching_is_off_by_default_and_only_where_supported(
    fake: FakeBedrock, make_provider: MakeProvider
) -> None:
    system = ChatMessage("system", "Be brief.")
    await collect(make_provider(), ask(CLAUDE, system, ASK))
    assert "cachePoint" not in json.dumps(last(fake).body)
    await collect(make_provider(prompt_caching=True), ask(LLAMA3, system, ASK))
    assert "cachePoint" not in json.dumps(last(fake).body)
    # A short conversation gets the system cache point only: too short to be worth a write.
    await collect(make_provider(prompt_caching=True), ask(CLAUDE, system, ASK))
    assert json.dumps(last(fake).body).count("cachePoint") == 1


# -- native families ------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
async def test_cohere_command_answers_whole_without_its_eos_token(
    fake: FakeBedrock, provider: BedrockProvider, stream: bool
) -> None:
    fake.reply = Reply(text=LONG_WORDS, chunks=4)
    events = await collect(provider, ask(COMMAND, stream=stream))
    # Bedrock's default for this body would stop at 20 tokens; the literal end marker it
    # streams as text is not part of the answer.
    assert text_of(events) == LONG_WORDS
    assert "<EOS_TOKEN>" not in text_of(events)
    assert end_of(events).stop_reason == "stop"
    assert last(fake).body["max_tokens"] == 2048


async def test_jurassic_answers_whole_too(fake: FakeBedrock, make_provider: MakeProvider) -> None:
    fake.reply = Reply(text=LONG_WORDS)
    events = await collect(make_provider(default_max_tokens=500), ask(J2))
    assert text_of(events) == LONG_WORDS
    assert last(fake).body["maxTokens"] == 500


async def test_native_temperature_ranges_are_their_own(
    fake: FakeBedrock, provider: BedrockProvider
) -> None:
    await collect(provider, ask(COMMAND, options=ChatOptions(temperature=2.5)))
    assert last(fake).body["temperature"] == 2.5  # Command accepts 0 to 5
    with pytest.raises(InvalidRequest, match="0 to 1"):
        await collect(provider, ask(J2, options=ChatOptions(temperature=1.5)))


# -- application inference profiles ---------------------------------------------------------------

APP_ARN = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6"


async def test_application_inference_profiles_are_listed_by_arn(
    fake: FakeBedrock, provider: BedrockProvider
) -> None:
    models = {m.id: m for m in await provider.list_models()}
    profile = models[APP_ARN]
    assert profile.name == "team-claude"
    assert profile.capabilities.tools and profile.context_length == 200_000
    fake.reply = Reply(tool_calls=[("get_weather", {"city": "Paris"})])
    events = await collect(provider, ask(APP_ARN, tools=(WEATHER,)))
    assert calls_of(events)[0][2] == "get_weather"
    assert last(fake).model_id == APP_ARN


async def test_an_unlisted_application_profile_arn_is_looked_up_once(
    fake: FakeBedrock, provider: BedrockProvider
) -> None:
    for _ in range(2):
        events = await collect(
            provider, ask(APP_ARN, response_format=ResponseFormat("json_object"))
        )
        assert isinstance(json.loads(text_of(events)), dict)
    assert len(fake.calls("GetInferenceProfile")) == 1
    assert [r.model_id for r in fake.calls("ConverseStream")] == [APP_ARN, APP_ARN]
