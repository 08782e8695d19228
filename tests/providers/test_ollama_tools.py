"""OllamaProvider's tools, structured output, reasoning and extra options, against the fake."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
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
from providers.errors import InvalidRequest, Unsupported, UpstreamError
from providers.ollama import OllamaProvider
from tests.fakes.ollama import FakeModel, FakeOllama

TOOLER = "llama3.2:1b"
PLAIN = "gemma2:2b"
THINKER = "qwen3:0.6b"
WEATHER = Tool(
    "get_weather",
    "Get the weather in a given city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
TIME = Tool(
    "get_time",
    "The time in a timezone",
    {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
)
SCHEMA = {
    "type": "object",
    "properties": {"age": {"type": "integer"}, "available": {"type": "boolean"}},
    "required": ["age", "available"],
}


def _models() -> list[FakeModel]:
    return [
        FakeModel(
            TOOLER,
            capabilities=("completion", "tools"),
            reply="It is 11 degrees in Toronto.",
            tool_calls=[("get_weather", {"city": "Toronto"}), ("get_time", {"tz": "EST"})],
        ),
        FakeModel(PLAIN, capabilities=("completion",), reply="Plain."),
        FakeModel(
            THINKER,
            family="qwen3",
            capabilities=("completion", "tools", "thinking"),
            thinking="Let me think.",
            reply="Done.",
        ),
    ]


@pytest.fixture(scope="module")
async def module_fake() -> AsyncIterator[FakeOllama]:
    async with FakeOllama(_models()) as fake:
        yield fake


@pytest.fixture
def fake(module_fake: FakeOllama) -> FakeOllama:
    module_fake.reset()
    module_fake.models = {m.name: m for m in _models()}  # scripts back to the start
    return module_fake


@pytest.fixture
async def provider(fake: FakeOllama) -> AsyncIterator[OllamaProvider]:
    p = OllamaProvider(fake.url)
    yield p
    await p.aclose()


def ask(model: str = TOOLER, *messages: ChatMessage, **kwargs: Any) -> ChatRequest:
    history = messages or (ChatMessage("user", "What is the weather in Toronto?"),)
    return ChatRequest(model=model, messages=history, **kwargs)


async def collect(provider: OllamaProvider, request: ChatRequest) -> list[ChatEvent]:
    return [event async for event in provider.chat(request)]


def calls_of(events: list[ChatEvent]) -> list[ToolCallDelta]:
    return [e for e in events if isinstance(e, ToolCallDelta)]


def last_body(fake: FakeOllama) -> dict[str, Any]:
    return fake.calls("/api/chat")[-1].body


@pytest.mark.parametrize("stream", [True, False])
async def test_tool_calls_become_numbered_deltas_and_end_as_tool_calls(
    provider: OllamaProvider, fake: FakeOllama, stream: bool
) -> None:
    events = await collect(provider, ask(tools=(WEATHER, TIME), stream=stream))
    calls = calls_of(events)
    assert [(c.index, c.name, json.loads(c.arguments)) for c in calls] == [
        (0, "get_weather", {"city": "Toronto"}),
        (1, "get_time", {"tz": "EST"}),
    ]
    assert all(c.id and c.id.startswith("call_") for c in calls)
    assert len({c.id for c in calls}) == 2
    assert not [e for e in events if isinstance(e, TextDelta)]
    end = events[-1]
    assert isinstance(end, ChatEnd) and end.stop_reason == "tool_calls"
    assert last_body(fake)["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER.parameters,
                "description": "Get the weather in a given city",
            },
        },
        {
            "type": "function",
            "function": {
                "name": "get_time",
                "parameters": TIME.parameters,
                "description": "The time in a timezone",
            },
        },
    ]


async def test_older_ollama_without_call_ids_gets_ids_made_up(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    fake.tool_call_ids = False
    calls = calls_of(await collect(provider, ask(tools=(WEATHER,))))
    assert [(c.index, c.name) for c in calls] == [(0, "get_weather")]
    assert calls[0].id and calls[0].id.startswith("call_")


async def test_parallel_tool_calls_false_keeps_only_the_first_call(
    provider: OllamaProvider,
) -> None:
    calls = calls_of(await collect(provider, ask(tools=(WEATHER, TIME), parallel_tool_calls=False)))
    assert [c.name for c in calls] == ["get_weather"]


async def test_a_tool_round_trip_sends_the_calls_and_results_back(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    history = (
        ChatMessage("user", "What is the weather in Toronto?"),
        ChatMessage(
            "assistant", "", tool_calls=(ToolCall("call_1", "get_weather", '{"city":"Toronto"}'),)
        ),
        ChatMessage("tool", "11 degrees celsius", tool_call_id="call_1"),
    )
    events = await collect(provider, ask(TOOLER, *history, tools=(WEATHER,)))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == (
        "It is 11 degrees in Toronto."
    )
    assert isinstance(events[-1], ChatEnd) and events[-1].stop_reason == "stop"
    assert last_body(fake)["messages"] == [
        {"role": "user", "content": "What is the weather in Toronto?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_1",
                    "function": {"name": "get_weather", "arguments": {"city": "Toronto"}},
                }
            ],
        },
        # The function name comes from the call the result answers, as Ollama wants it.
        {
            "role": "tool",
            "content": "11 degrees celsius",
            "tool_name": "get_weather",
            "tool_call_id": "call_1",
        },
    ]


async def test_tool_call_arguments_that_are_not_an_object_are_invalid(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    history = (
        ChatMessage("user", "Hi"),
        ChatMessage("assistant", "", tool_calls=(ToolCall("call_1", "get_weather", "[1, 2]"),)),
        ChatMessage("tool", "ok", tool_call_id="call_1"),
    )
    with pytest.raises(InvalidRequest, match="JSON object"):
        await collect(provider, ask(TOOLER, *history))
    assert fake.calls("/api/chat") == []


async def test_tool_choice_none_sends_no_tools(provider: OllamaProvider, fake: FakeOllama) -> None:
    events = await collect(provider, ask(tools=(WEATHER,), tool_choice=ToolChoice("none")))
    assert calls_of(events) == []
    assert "tools" not in last_body(fake)


@pytest.mark.parametrize("stream", [True, False])
async def test_a_named_tool_choice_is_forced_through_the_output_format(
    provider: OllamaProvider, fake: FakeOllama, stream: bool
) -> None:
    fake.script(TOOLER, "unused")  # no native calls: the constrained answer is the call
    request = ask(
        TOOLER,
        ChatMessage("user", "What time is it in New York?"),
        tools=(WEATHER, TIME),
        tool_choice=ToolChoice("function", "get_time"),
        stream=stream,
    )
    events = await collect(provider, request)
    (call,) = calls_of(events)
    assert (call.index, call.name, json.loads(call.arguments)) == (0, "get_time", {"tz": "text"})
    assert not [e for e in events if isinstance(e, TextDelta)]
    assert isinstance(events[-1], ChatEnd) and events[-1].stop_reason == "tool_calls"
    assert last_body(fake)["format"] == TIME.parameters


async def test_required_with_several_tools_lets_the_model_pick_one(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    fake.script(TOOLER, "unused")
    request = ask(tools=(WEATHER, TIME), tool_choice=ToolChoice("required"))
    (call,) = calls_of(await collect(provider, request))
    assert call.name == "get_weather"  # the first alternative the fake's grammar allows
    assert json.loads(call.arguments) == {"city": "text"}
    alternatives = last_body(fake)["format"]["anyOf"]
    assert [a["properties"]["name"] for a in alternatives] == [
        {"const": "get_weather"},
        {"const": "get_time"},
    ]


async def test_tools_on_a_model_without_tool_support_are_unsupported(
    provider: OllamaProvider,
) -> None:
    with pytest.raises(Unsupported, match="does not support tools"):
        await collect(provider, ask(PLAIN, tools=(WEATHER,)))


@pytest.mark.parametrize("stream", [True, False])
async def test_json_mode_and_json_schema_become_format(
    provider: OllamaProvider, fake: FakeOllama, stream: bool
) -> None:
    events = await collect(
        provider, ask(PLAIN, response_format=ResponseFormat("json_object"), stream=stream)
    )
    assert last_body(fake)["format"] == "json"
    assert json.loads("".join(e.text for e in events if isinstance(e, TextDelta))) == {
        "reply": "Plain."
    }

    events = await collect(
        provider,
        ask(PLAIN, response_format=ResponseFormat("json_schema", SCHEMA, "person", True)),
    )
    assert last_body(fake)["format"] == SCHEMA
    answer = json.loads("".join(e.text for e in events if isinstance(e, TextDelta)))
    assert set(answer) == {"age", "available"} and isinstance(answer["age"], int)


@pytest.mark.parametrize(
    ("effort", "think"),
    [("none", False), ("minimal", "low"), ("low", "low"), ("medium", "medium"), ("high", "high")],
)
async def test_reasoning_effort_becomes_think(
    provider: OllamaProvider, fake: FakeOllama, effort: Any, think: bool | str
) -> None:
    events = await collect(provider, ask(THINKER, options=ChatOptions(reasoning_effort=effort)))
    assert last_body(fake)["think"] == think
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    assert reasoning == ("" if think is False else "Let me think.")


async def test_without_reasoning_effort_think_is_left_to_the_model(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    await collect(provider, ask(THINKER))
    assert "think" not in last_body(fake)


async def test_reasoning_on_a_model_that_cannot_think_is_unsupported(
    provider: OllamaProvider,
) -> None:
    with pytest.raises(Unsupported, match="does not support thinking"):
        await collect(provider, ask(PLAIN, options=ChatOptions(reasoning_effort="high")))


async def test_extra_options_and_keep_alive_reach_ollama(fake: FakeOllama) -> None:
    provider = OllamaProvider(fake.url, keep_alive="10m")
    try:
        options = ChatOptions(
            top_k=40,
            min_p=0.05,
            repeat_penalty=1.1,
            num_ctx=8192,
            frequency_penalty=0.5,
            presence_penalty=0.25,
        )
        await collect(provider, ask(PLAIN, options=options))
        body = last_body(fake)
        assert body["options"] == {
            "top_k": 40,
            "min_p": 0.05,
            "repeat_penalty": 1.1,
            "num_ctx": 8192,
            "frequency_penalty": 0.5,
            "presence_penalty": 0.25,
        }
        assert body["keep_alive"] == "10m"  # the provider's setting, unless the request says
        await collect(provider, ask(PLAIN, options=ChatOptions(keep_alive=0)))
        assert last_body(fake)["keep_alive"] == 0
    finally:
        await provider.aclose()


async def test_a_forced_call_that_is_not_json_is_an_upstream_error(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    fake.ignore_format = True  # an Ollama older than structured outputs answers in prose
    request = ask(TOOLER, tools=(WEATHER,), tool_choice=ToolChoice("function", "get_weather"))
    fake.script(TOOLER, "I would rather not.")
    with pytest.raises(UpstreamError, match="not a JSON object"):
        await collect(provider, request)
