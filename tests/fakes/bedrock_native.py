"""The fake Bedrock's InvokeModel bodies: AI21 Jurassic-2, legacy Cohere Command (whole and
streamed), Titan and Cohere embeddings, each in its own native format."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
import uuid
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from .bedrock_converse import BLOCKED_MESSAGE
from .eventstream import event_frame

COHERE_EOS = "<EOS_TOKEN>"
# Bedrock's defaults when a native body sets no maximum: Command's max_tokens, J2's maxTokens.
COHERE_DEFAULT_MAX_TOKENS = 20
J2_DEFAULT_MAX_TOKENS = 16
GUARDRAIL_ACTION = "amazon-bedrock-guardrailAction"
_J2_REASONS = {"end_turn": "endoftext", "max_tokens": "length", "stop_sequence": "stop"}
_COHERE_REASONS = {"end_turn": "COMPLETE", "max_tokens": "MAX_TOKENS", "stop_sequence": "COMPLETE"}


def split(text: str, parts: int) -> list[str]:
    size = max(1, math.ceil(len(text) / max(1, parts)))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def error(
    status: int, error_type: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    # The header carries the code the way AWS services send it; botocore keeps the part before ':'.
    return web.json_response(
        {"message": message},
        status=status,
        headers={
            "X-Amzn-ErrorType": f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/",
            "x-amzn-RequestId": str(uuid.uuid4()),
            **(headers or {}),
        },
    )


def _vector(text: str, dimensions: int, *, normalize: bool = True) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    raw = [b / 127.5 - 1.0 for b in itertools.islice(itertools.cycle(digest), dimensions)]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [v / norm for v in raw] if normalize else raw


def _tokens(count: int) -> list[dict[str, Any]]:
    return [
        {"generatedToken": {"token": f"t{i}"}, "textRange": {"start": i, "end": i + 1}}
        for i in range(count)
    ]


class NativeBodies:
    """InvokeModel and InvokeModelWithResponseStream, mixed into `FakeBedrock`."""

    reply: Any
    usage_headers: bool

    async def _write_stream(
        self, request: web.Request, frames: list[tuple[bytes, bool]], headers: Mapping[str, str]
    ) -> web.StreamResponse:
        raise NotImplementedError

    def _usage_headers(self) -> dict[str, str]:
        if not self.usage_headers:
            return {}
        return {
            "X-Amzn-Bedrock-Input-Token-Count": str(self.reply.input_tokens),
            "X-Amzn-Bedrock-Output-Token-Count": str(self.reply.output_tokens),
            "X-Amzn-Bedrock-Invocation-Latency": str(self.reply.latency_ms),
        }

    def _native_answer(self, base: str, body: Any, blocked: bool) -> tuple[str, str]:
        """The reply's text and Converse-style stop reason, cut at the body's token maximum
        (Bedrock's tiny default when it sets none; a word stands for a token)."""
        if blocked:
            return BLOCKED_MESSAGE, "guardrail_intervened"
        if base.startswith("ai21.j2-"):
            limit = body.get("maxTokens", J2_DEFAULT_MAX_TOKENS)
        else:
            limit = body.get("max_tokens", COHERE_DEFAULT_MAX_TOKENS)
        words = self.reply.text.split(" ")
        if len(words) > limit:
            return " ".join(words[:limit]), "max_tokens"
        return self.reply.text, self.reply.stop_reason

    def _invoke(self, base: str, body: Any, blocked: bool = False) -> web.Response:
        reply = self.reply
        if base.startswith("ai21.j2-"):
            text, reason = self._native_answer(base, body, blocked)
            payload: dict[str, Any] = {
                "id": 1234,
                "prompt": {"text": body["prompt"], "tokens": _tokens(reply.input_tokens)},
                "completions": [
                    {
                        "data": {"text": text, "tokens": _tokens(reply.output_tokens)},
                        "finishReason": {"reason": _J2_REASONS.get(reason, "endoftext")},
                    }
                ],
            }
        elif base.startswith(("cohere.command-text-", "cohere.command-light-text-")):
            text, reason = self._native_answer(base, body, blocked)
            payload = {
                "id": str(uuid.uuid4()),
                "prompt": body["prompt"],
                "generations": [
                    {
                        "id": str(uuid.uuid4()),
                        "text": text,
                        "finish_reason": _COHERE_REASONS.get(reason, "COMPLETE"),
                    }
                ],
            }
        elif base.startswith("amazon.titan-embed-text-v2"):
            dimensions = body.get("dimensions", 1024)
            if dimensions not in (256, 512, 1024):
                return error(400, "ValidationException", "Malformed input request: dimensions")
            vector = _vector(body["inputText"], dimensions, normalize=body.get("normalize", True))
            payload = {
                "embedding": vector,
                "embeddingsByType": {"float": vector},
                "inputTextTokenCount": max(1, len(body["inputText"]) // 4),
            }
        elif base.startswith("cohere.embed-"):
            if "input_type" not in body:
                return error(400, "ValidationException", "Malformed input request: input_type")
            payload = {
                "id": str(uuid.uuid4()),
                "texts": body["texts"],
                "embeddings": [_vector(t, 1024) for t in body["texts"]],
                "response_type": "embeddings_floats",
            }
        else:
            return error(
                400,
                "ValidationException",
                "Malformed input request, please reformat your input and try again.",
            )
        if blocked:
            payload[GUARDRAIL_ACTION] = "INTERVENED"
        return web.json_response(payload, headers=self._usage_headers())

    async def _invoke_stream(
        self, request: web.Request, base: str, body: Any, blocked: bool = False
    ) -> web.StreamResponse:
        if not base.startswith(
            ("cohere.command-text-", "cohere.command-light-text-")
        ) or not body.get("stream"):
            return error(
                400,
                "ValidationException",
                "Malformed input request, please reformat your input and try again.",
            )
        reply = self.reply
        text, reason = self._native_answer(base, body, blocked)
        chunks: list[dict[str, Any]] = [
            {"text": piece, "is_finished": False} for piece in split(text, reply.chunks)
        ]
        # Command's stream spells out its end-of-sequence token as one more text chunk.
        chunks.append({"text": COHERE_EOS, "is_finished": False})
        final: dict[str, Any] = {
            "is_finished": True,
            "finish_reason": _COHERE_REASONS.get(reason, "COMPLETE"),
        }
        if blocked:
            final[GUARDRAIL_ACTION] = "INTERVENED"
        if self.usage_headers:
            final["amazon-bedrock-invocationMetrics"] = {
                "inputTokenCount": reply.input_tokens,
                "outputTokenCount": reply.output_tokens,
                "invocationLatency": reply.latency_ms,
                "firstByteLatency": reply.latency_ms // 2,
            }
        frames = [(self._chunk(c), True) for c in chunks] + [(self._chunk(final), False)]
        return await self._write_stream(
            request, frames, {"X-Amzn-Bedrock-Content-Type": "application/json"}
        )

    @staticmethod
    def _chunk(payload: Mapping[str, Any]) -> bytes:
        # PayloadPart.bytes is a blob: base64 inside the event's JSON, decoded by botocore.
        encoded = base64.b64encode(json.dumps(payload).encode()).decode()
        return event_frame("chunk", {"bytes": encoded})
