"""Bedrock embeddings: Titan Text Embeddings (one text per call) and Cohere Embed (batches)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..base import EmbedRequest, EmbedResult, Usage
from ..errors import Unsupported
from .native import native_usage

COHERE_EMBED_BATCH = 96  # Cohere Embed's limit on texts per call

Invoke = Callable[[str, Mapping[str, Any]], Awaitable[tuple[dict[str, Any], Mapping[str, str]]]]


async def embed_titan(request: EmbedRequest, base: str, invoke: Invoke) -> EmbedResult:
    v2 = base.startswith("amazon.titan-embed-text-v2")
    if request.dimensions is not None and not v2:
        raise Unsupported(f"{request.model} has a fixed embedding size")
    vectors: list[list[float]] = []
    tokens = 0
    for text in request.inputs:
        body: dict[str, Any] = {"inputText": text}
        if v2:
            body["normalize"] = True
            if request.dimensions is not None:
                body["dimensions"] = request.dimensions
        payload, _ = await invoke(request.model, body)
        vectors.append(payload["embedding"])
        tokens += int(payload.get("inputTextTokenCount", 0))
    return EmbedResult(vectors=vectors, usage=Usage(input_tokens=tokens))


async def embed_cohere(request: EmbedRequest, invoke: Invoke) -> EmbedResult:
    if request.dimensions is not None:
        raise Unsupported(f"{request.model} has a fixed embedding size")
    vectors: list[list[float]] = []
    tokens = 0
    exact = True
    inputs = list(request.inputs)
    for start in range(0, len(inputs), COHERE_EMBED_BATCH):
        batch = inputs[start : start + COHERE_EMBED_BATCH]
        body = {"texts": batch, "input_type": "search_document"}
        payload, headers = await invoke(request.model, body)
        vectors += payload["embeddings"]
        usage = native_usage(headers, None, "".join(batch), "")
        tokens += usage.input_tokens
        exact = exact and usage.exact
    return EmbedResult(vectors=vectors, usage=Usage(input_tokens=tokens, exact=exact))
