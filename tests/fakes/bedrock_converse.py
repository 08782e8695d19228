"""How the fake Bedrock's models answer a Converse request: validation as Bedrock does it, tool
use, extended thinking, guardrails and prompt caching. The server (`bedrock.py`) turns the
`Answer` into a Converse response or ConverseStream frames.

Per-model feature support follows the Bedrock user guide (Converse "Supported models and model
features", prompt caching, extended thinking); error messages are Bedrock's.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .schema import instance_of

_TOOLS_STREAMING = ("anthropic.claude-3", "amazon.nova-")
_TOOLS_WHOLE_ONLY = ("meta.llama3-1", "cohere.command-r", "mistral.mistral-large")
_FORCED_CHOICE = ("anthropic.claude-3", "amazon.nova-", "mistral.mistral-large")
_THINKING = ("anthropic.claude-3-7",)
_ALWAYS_THINKS = ("deepseek.r1",)
_CACHING = ("anthropic.claude-3-5-haiku", "anthropic.claude-3-7", "amazon.nova-")
_TITAN_STOP = re.compile(r"^(\|+|User:)$")
BLOCKED_MESSAGE = "Sorry, the model cannot answer this question."
DEFAULT_THOUGHT = "Let me think this through."


class ConverseError(Exception):
    """A request Bedrock refuses: (status, error type, message)."""

    def __init__(self, message: str, *, status: int = 400, code: str = "ValidationException"):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Answer:
    reasoning: str
    text: str
    calls: list[tuple[str, str, Any]]  # (toolUseId, name, input)
    stop_reason: str
    usage: dict[str, int]
    trace: dict[str, Any] | None = None


@dataclass
class Guardrail:
    """A guardrail with one denied topic: a user message mentioning `word` is blocked."""

    word: str
    version: str = "DRAFT"


@dataclass
class PromptCache:
    """Cached prompt prefixes, as sequences of content blocks (Bedrock caches at cache points
    and reads the longest cached prefix at a block boundary)."""

    prefixes: set[tuple[str, ...]] = field(default_factory=set)

    def clear(self) -> None:
        self.prefixes.clear()


def _tokens(blocks: Sequence[str]) -> int:
    return sum(len(b) for b in blocks) // 4


def _flatten(body: dict[str, Any]) -> tuple[list[str], list[int]]:
    """The request's blocks in order, and the positions of its cache points."""
    blocks: list[str] = []
    points: list[int] = []
    for block in body.get("system") or []:
        if "cachePoint" in block:
            points.append(len(blocks))
        else:
            blocks.append("system:" + json.dumps(block, sort_keys=True))
    for message in body.get("messages") or []:
        for block in message.get("content") or []:
            if "cachePoint" in block:
                points.append(len(blocks))
            else:
                blocks.append(message["role"] + ":" + json.dumps(block, sort_keys=True))
    return blocks, points


class ConverseRules:
    def __init__(self, cache: PromptCache, guardrails: dict[str, Guardrail]) -> None:
        self.cache = cache
        self.guardrails = guardrails

    def answer(self, base: str, body: dict[str, Any], reply: Any, *, stream: bool) -> Answer:
        body = body or {}
        config = body.get("inferenceConfig") or {}
        self._check_inference(base, config)
        tool_config = body.get("toolConfig")
        self._check_tool_blocks(body, tool_config)
        if tool_config is not None:
            self._check_tools(base, tool_config, stream=stream)
        thinking = self._thinking(base, body, config, tool_config)
        usage = reply.usage()
        if any("cachePoint" in str(b) for b in [body.get("system"), body.get("messages")]):
            usage = self._cached_usage(base, body, usage)
        if blocked := self._guardrail(body):
            return Answer("", BLOCKED_MESSAGE, [], "guardrail_intervened", usage, blocked)
        calls = self._calls(body, tool_config, reply)
        reasoning = (reply.reasoning or DEFAULT_THOUGHT) if thinking else ""
        if calls:
            return Answer(reasoning, "", calls, "tool_use", usage)
        return Answer(reasoning, reply.text, [], reply.stop_reason, usage)

    # -- validation -------------------------------------------------------------------------

    @staticmethod
    def _check_inference(base: str, config: dict[str, Any]) -> None:
        for key in ("temperature", "topP"):
            value = config.get(key)
            if value is not None and not 0 <= value <= 1:
                raise ConverseError(
                    f"1 validation error detected: Value '{value}' at 'inferenceConfig.{key}' "
                    "failed to satisfy constraint: Member must have value less than or equal to 1"
                )
        if base.startswith("amazon.titan-text"):
            for stop in config.get("stopSequences") or ():
                if not _TITAN_STOP.match(stop):
                    raise ConverseError(
                        "The model returned the following errors: Malformed input request: "
                        f"string [{stop}] does not match pattern ^(\\|+|User:)$, please reformat "
                        "your input and try again."
                    )

    @staticmethod
    def _check_tool_blocks(body: dict[str, Any], tool_config: Any) -> None:
        uses: set[str] = set()
        for message in body.get("messages") or []:
            for block in message.get("content") or []:
                if tool_config is None and ("toolUse" in block or "toolResult" in block):
                    raise ConverseError(
                        "The toolConfig field must be defined when using toolUse and "
                        "toolResult content blocks."
                    )
                if "toolUse" in block:
                    uses.add(block["toolUse"]["toolUseId"])
                if "toolResult" in block and block["toolResult"]["toolUseId"] not in uses:
                    raise ConverseError(
                        "Expected toolResult blocks at messages.1.content for the following "
                        f"Ids: {block['toolResult']['toolUseId']}"
                    )

    @staticmethod
    def _check_tools(base: str, tool_config: dict[str, Any], *, stream: bool) -> None:
        if not base.startswith(_TOOLS_STREAMING + _TOOLS_WHOLE_ONLY):
            raise ConverseError("This model doesn't support tool use.")
        if stream and not base.startswith(_TOOLS_STREAMING):
            raise ConverseError("This model doesn't support tool use in streaming mode.")
        choice = tool_config.get("toolChoice") or {}
        for forced in ("any", "tool"):
            if forced in choice and not base.startswith(_FORCED_CHOICE):
                raise ConverseError(
                    f"This model doesn't support the toolChoice.{forced} field. Remove "
                    f"toolChoice.{forced} and try again."
                )

    @staticmethod
    def _thinking(
        base: str, body: dict[str, Any], config: dict[str, Any], tool_config: Any
    ) -> bool:
        if base.startswith(_ALWAYS_THINKS):
            return True
        thinking = (body.get("additionalModelRequestFields") or {}).get("thinking")
        if not thinking or thinking.get("type") != "enabled":
            return False
        if not base.startswith(_THINKING):
            raise ConverseError(
                "The model returned the following errors: thinking: Extra inputs are not permitted"
            )
        budget = thinking.get("budget_tokens", 0)
        if budget < 1024:
            raise ConverseError(
                "The model returned the following errors: thinking.enabled.budget_tokens: "
                "Input should be greater than or equal to 1024"
            )
        if budget >= config.get("maxTokens", 64_000):
            raise ConverseError(
                "The model returned the following errors: `max_tokens` must be greater than "
                "`thinking.budget_tokens`"
            )
        if config.get("temperature", 1) != 1:
            raise ConverseError(
                "The model returned the following errors: `temperature` may only be set to 1 "
                "when thinking is enabled."
            )
        choice = (tool_config or {}).get("toolChoice") or {}
        if "any" in choice or "tool" in choice:
            raise ConverseError(
                "The model returned the following errors: Thinking may not be enabled when "
                "tool_choice forces tool use."
            )
        return True

    # -- answering ----------------------------------------------------------------------------

    def _guardrail(self, body: dict[str, Any]) -> dict[str, Any] | None:
        config = body.get("guardrailConfig")
        if config is None:
            return None
        guardrail = self.guardrails.get(config.get("guardrailIdentifier", ""))
        if guardrail is None or config.get("guardrailVersion") != guardrail.version:
            raise ConverseError("The guardrail identifier or version provided is invalid.")
        user_text = " ".join(
            block.get("text", "")
            for message in body.get("messages") or []
            if message.get("role") == "user"
            for block in message.get("content") or []
        )
        if guardrail.word.lower() not in user_text.lower():
            return None
        if config.get("trace") not in ("enabled", "enabled_full"):
            return {}
        topic = {"name": "Denied", "type": "DENY", "action": "BLOCKED"}
        assessment = {"topicPolicy": {"topics": [topic]}}
        identifier = config["guardrailIdentifier"]
        trace = {"inputAssessment": {identifier: assessment}, "actionReason": "Blocked"}
        return {"guardrail": trace}

    @staticmethod
    def _calls(body: dict[str, Any], tool_config: Any, reply: Any) -> list[tuple[str, str, Any]]:
        if tool_config is None:
            return []
        messages = body.get("messages") or []
        last = messages[-1].get("content", []) if messages else []
        if any("toolResult" in block for block in last):
            return []  # the model answers the results in words
        specs = {t["toolSpec"]["name"]: t["toolSpec"] for t in tool_config["tools"]}
        choice = tool_config.get("toolChoice") or {"auto": {}}
        scripted = [(name, args) for name, args in reply.tool_calls if name in specs]
        if "tool" in choice:
            name = choice["tool"]["name"]
            args = dict(scripted).get(name) or instance_of(specs[name]["inputSchema"]["json"])
            wanted = [(name, args)]
        elif "any" in choice:
            first = next(iter(specs))
            wanted = scripted or [(first, instance_of(specs[first]["inputSchema"]["json"]))]
        else:
            wanted = scripted
        return [
            ("tooluse_" + hashlib.sha256(f"{name}{i}".encode()).hexdigest()[:22], name, args)
            for i, (name, args) in enumerate(wanted)
        ]

    def _cached_usage(
        self, base: str, body: dict[str, Any], usage: dict[str, int]
    ) -> dict[str, int]:
        if not base.startswith(_CACHING):
            raise ConverseError(
                "The model returned the following errors: prompt caching is not supported"
            )
        blocks, points = _flatten(body)
        last = points[-1]
        # The longest prefix cached earlier (at any block boundary) is read; the rest up to the
        # last cache point is written.
        hit = max(
            (j for j in range(1, last + 1) if tuple(blocks[:j]) in self.cache.prefixes),
            default=0,
        )
        read = _tokens(blocks[:hit])
        write = _tokens(blocks[:last]) - read
        self.cache.prefixes.update(tuple(blocks[:point]) for point in points)
        rest = max(1, _tokens(blocks) - read - write)
        return {
            "inputTokens": rest,
            "outputTokens": usage["outputTokens"],
            "totalTokens": rest + read + write + usage["outputTokens"],
            "cacheReadInputTokens": read,
            "cacheWriteInputTokens": write,
        }
