"""What llmhub knows about Bedrock's model ids and families: which API serves each, and which
features (tools, forced tool choice, prompt caching, extended thinking) each one has.

The feature tables follow the Bedrock user guide ("Supported models and model features" for
Converse, the prompt caching and extended thinking pages, and each family's parameter page);
ids are matched on prefixes of the base model id, with any inference-profile geography stripped.
A model no table names gets the permissive default: Bedrock itself then has the last word.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..base import ModelCapabilities, ModelInfo

Family = Literal[
    "converse", "titan_text", "jurassic", "cohere_legacy", "titan_embed", "cohere_embed"
]

# Cross-region inference profile ids prefix the model id with a geography: "us.anthropic.claude-…".
_GEO_PREFIXES = frozenset({"us", "eu", "apac", "us-gov", "global", "jp", "au", "ca"})
APPLICATION_PROFILE = ":application-inference-profile/"

# Longest prefix wins.
_CONTEXT_LENGTHS: tuple[tuple[str, int], ...] = (
    ("anthropic.claude-3", 200_000),
    ("anthropic.claude-sonnet-4", 200_000),
    ("anthropic.claude-opus-4", 200_000),
    ("anthropic.claude-haiku-4", 200_000),
    ("amazon.nova-micro", 128_000),
    ("amazon.nova-lite", 300_000),
    ("amazon.nova-pro", 300_000),
    ("amazon.nova-premier", 1_000_000),
    ("amazon.titan-text-express", 8_192),
    ("amazon.titan-text-lite", 4_096),
    ("amazon.titan-text-premier", 32_000),
    ("amazon.titan-embed-text-v2", 8_192),
    ("ai21.jamba", 256_000),
    ("ai21.j2-", 8_191),
    ("cohere.command-r", 128_000),
    ("cohere.command-text", 4_096),
    ("cohere.command-light-text", 4_096),
    ("cohere.embed-", 512),
    ("meta.llama3-1", 128_000),
    ("meta.llama3-2", 128_000),
    ("meta.llama3-3", 128_000),
    ("meta.llama3-", 8_192),
    ("mistral.mistral-large-2407", 128_000),
    ("mistral.mistral-7b", 32_000),
    ("mistral.mixtral-8x7b", 32_000),
)

# The most a model generates in one answer, where its parameter page states it. Larger
# `max_tokens` are clamped to this; models not listed get the caller's value as is.
_MAX_OUTPUT: tuple[tuple[str, int], ...] = (
    ("anthropic.claude-3-haiku", 4_096),
    ("anthropic.claude-3-sonnet", 4_096),
    ("anthropic.claude-3-opus", 4_096),
    ("anthropic.claude-3-5", 8_192),
    ("anthropic.claude-3-7-sonnet", 64_000),
    ("anthropic.claude-sonnet-4", 64_000),
    ("anthropic.claude-opus-4", 32_000),
    ("amazon.titan-text-express", 8_192),
    ("amazon.titan-text-lite", 4_096),
    ("amazon.titan-text-premier", 3_072),
    ("ai21.j2-", 8_191),
    ("cohere.command-text", 4_096),
    ("cohere.command-light-text", 4_096),
)

_CLAUDE_TOOLS = (
    "anthropic.claude-3",
    "anthropic.claude-sonnet-4",
    "anthropic.claude-opus-4",
    "anthropic.claude-haiku-4",
)
# Tool use, streamed too.
_STREAMING_TOOLS = (*_CLAUDE_TOOLS, "amazon.nova-", "ai21.jamba-1-5")
# No tool use at all.
_NO_TOOLS = (
    "amazon.titan-",
    "anthropic.claude-v2",
    "anthropic.claude-instant",
    "ai21.jamba-instruct",
    "ai21.j2-",
    "cohere.command-text",
    "cohere.command-light-text",
    "meta.llama2",
    "meta.llama3-8b",
    "meta.llama3-70b",
    "meta.llama3-2-1b",
    "meta.llama3-2-3b",
    "mistral.mistral-7b",
    "mistral.mixtral",
    "deepseek.r1",
)
# Every other model with tools (Command R, Llama 3.1+, Mistral Large...) refuses them while
# streaming: the call is made whole and replayed as a stream.
# `toolChoice` `any` and `tool` (required, a named function, forced structured output).
_FORCED_TOOL_CHOICE = (*_CLAUDE_TOOLS, "amazon.nova-", "mistral.mistral-large")
_PROMPT_CACHING = (
    "anthropic.claude-3-5-haiku",
    "anthropic.claude-3-7-sonnet",
    "anthropic.claude-sonnet-4",
    "anthropic.claude-opus-4",
    "anthropic.claude-haiku-4",
    "amazon.nova-",
)
# Claude's extended thinking, turned on with `thinking` in additionalModelRequestFields.
_CLAUDE_THINKING = (
    "anthropic.claude-3-7",
    "anthropic.claude-sonnet-4",
    "anthropic.claude-opus-4",
    "anthropic.claude-haiku-4-5",
)
_ALWAYS_REASONS = ("deepseek.r1",)


def base_model_id(model_id: str) -> str:
    """The foundation model behind an id: strips ARNs and inference-profile geography prefixes.

    An application inference profile's ARN names no model; `ProfileModels` knows which."""
    if model_id.startswith("arn:"):
        model_id = model_id.rsplit("/", 1)[-1]
    head, sep, rest = model_id.partition(".")
    if sep and head in _GEO_PREFIXES and "." in rest:
        return rest
    return model_id


def is_application_profile(model_id: str) -> bool:
    return model_id.startswith("arn:") and APPLICATION_PROFILE in model_id


def model_family(base: str) -> Family:
    if base.startswith("ai21.j2-"):
        return "jurassic"
    if base.startswith(("cohere.command-text-", "cohere.command-light-text-")):
        return "cohere_legacy"
    if base.startswith("amazon.titan-embed"):
        return "titan_embed"
    if base.startswith("cohere.embed-"):
        return "cohere_embed"
    if base.startswith(("amazon.titan-text-", "amazon.titan-tg1")):
        return "titan_text"
    return "converse"


def _longest(table: tuple[tuple[str, int], ...], base: str) -> int | None:
    matches = [(len(prefix), n) for prefix, n in table if base.startswith(prefix)]
    return max(matches)[1] if matches else None


@dataclass(slots=True, frozen=True)
class Features:
    """What one Bedrock model can do, from its base id."""

    base: str
    family: Family
    tools: bool
    streaming_tools: bool
    forced_tool_choice: bool
    prompt_caching: bool
    claude_thinking: bool
    reasoning: bool
    context_length: int | None
    max_output: int | None

    @classmethod
    def of(cls, base: str) -> Features:
        family = model_family(base)
        tools = family == "converse" and not base.startswith(_NO_TOOLS)
        claude_thinking = base.startswith(_CLAUDE_THINKING)
        return cls(
            base=base,
            family=family,
            tools=tools,
            streaming_tools=tools and base.startswith(_STREAMING_TOOLS),
            forced_tool_choice=base.startswith(_FORCED_TOOL_CHOICE),
            prompt_caching=base.startswith(_PROMPT_CACHING),
            claude_thinking=claude_thinking,
            reasoning=claude_thinking or base.startswith(_ALWAYS_REASONS),
            context_length=_longest(_CONTEXT_LENGTHS, base),
            max_output=_longest(_MAX_OUTPUT, base),
        )


# -- the catalog ------------------------------------------------------------------------------


def capabilities(summary: Mapping[str, Any]) -> ModelCapabilities:
    features = Features.of(summary["modelId"])
    if "EMBEDDING" in summary.get("outputModalities", ()):
        return ModelCapabilities(chat=False, streaming=False, system_prompt=False, embeddings=True)
    return ModelCapabilities(
        chat=True,
        streaming=bool(summary.get("responseStreamingSupported")) and features.family != "jurassic",
        system_prompt=features.family not in ("titan_text", "jurassic", "cohere_legacy"),
        vision="IMAGE" in summary.get("inputModalities", ()),
        reasoning=features.reasoning,
        tools=features.tools,
    )


def model_info(model_id: str, summary: Mapping[str, Any], name: str | None = None) -> ModelInfo:
    base = summary["modelId"]
    return ModelInfo(
        id=model_id,
        provider="bedrock",
        name=name or summary.get("modelName") or model_id,
        capabilities=capabilities(summary),
        context_length=Features.of(base).context_length,
        family=base.split(".", 1)[0],
        lifecycle=summary.get("modelLifecycle", {}).get("status") or None,
    )


def is_usable(summary: Mapping[str, Any]) -> bool:
    outputs = summary.get("outputModalities", ())
    lifecycle = summary.get("modelLifecycle", {}).get("status", "ACTIVE")
    return ("TEXT" in outputs or "EMBEDDING" in outputs) and lifecycle in ("ACTIVE", "LEGACY")


def is_on_demand(summary: Mapping[str, Any]) -> bool:
    return "ON_DEMAND" in summary.get("inferenceTypesSupported", ())


def profile_model(profile: Mapping[str, Any]) -> str:
    """The foundation model an inference profile routes to."""
    for model in profile.get("models", ()):
        arn = model.get("modelArn", "")
        if "foundation-model/" in arn:
            return str(arn.rsplit("/", 1)[-1])
    return base_model_id(profile["inferenceProfileId"])


def profile_model_id(profile: Mapping[str, Any]) -> str:
    """The id users call a profile by: application profiles by ARN (their ids are opaque)."""
    if profile.get("type") == "APPLICATION":
        return str(profile["inferenceProfileArn"])
    return str(profile["inferenceProfileId"])
