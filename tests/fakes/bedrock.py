"""A fake Amazon Bedrock on a loopback aiohttp server, speaking the real wire formats.

One server plays both services the provider talks to:

- `bedrock` (control plane, restJson): `GET /foundation-models`, `GET /inference-profiles`
  (paged with `maxResults`/`nextToken`).
- `bedrock-runtime`: `POST /model/{modelId}/converse`, `/converse-stream`, `/invoke`,
  `/invoke-with-response-stream`. `modelId` arrives percent-encoded (botocore quotes `:` and
  `/`), so it is read from the raw path.

Errors look like restJson errors from AWS: status code, `X-Amzn-ErrorType` header and a JSON body
`{"message": ...}`; mid-stream errors are eventstream `exception` messages.

    async with FakeBedrock() as fake:
        provider = BedrockProvider(region="us-east-1", endpoint_url=fake.url)

Replies are scripted with `fake.reply` (text, reasoning, `tool_calls`); what a Converse request
may ask and how models answer it (tools, thinking, guardrails in `fake.guardrails`, prompt
caching in `fake.cache`) is in `bedrock_converse.py`. Without a `type` filter
ListInferenceProfiles lists system-defined profiles only; `GET /inference-profiles/{id}` is
GetInferenceProfile. Legacy Cohere Command streams a literal `<EOS_TOKEN>` chunk before its last
one, and the native bodies default to Bedrock's tiny max tokens (Command 20, Jurassic-2 16).
Fault knobs are plain attributes (`response_delay`, `chunk_delay`, `drop_after_chunks`,
`stream_exception`, `denied_models`) plus `fail_next()`, `throttle_next()` and
`throttle_model()`. Every request is recorded in `fake.requests`; `fake.disconnected` is set
when a client goes away in the middle of a streamed response.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import unquote

from aiohttp import web

from .bedrock_converse import (
    BLOCKED_MESSAGE,
    Answer,
    ConverseError,
    ConverseRules,
    Guardrail,
    PromptCache,
)
from .bedrock_native import NativeBodies, error, split
from .eventstream import CONTENT_TYPE as EVENTSTREAM
from .eventstream import event_frame, exception_frame

ACCOUNT = "123456789012"
REGION = "us-east-1"
INVALID_MODEL_MESSAGE = "The provided model identifier is invalid."
ACCESS_DENIED_MESSAGE = "You don't have access to the model with the specified model ID."


def foundation_model(
    model_id: str,
    name: str,
    provider: str,
    *,
    inputs: Sequence[str] = ("TEXT",),
    outputs: Sequence[str] = ("TEXT",),
    streaming: bool = True,
    inference: Sequence[str] = ("ON_DEMAND",),
    lifecycle: str = "ACTIVE",
) -> dict[str, Any]:
    """A `FoundationModelSummary` as ListFoundationModels returns it."""
    return {
        "modelArn": f"arn:aws:bedrock:{REGION}::foundation-model/{model_id}",
        "modelId": model_id,
        "modelName": name,
        "providerName": provider,
        "inputModalities": list(inputs),
        "outputModalities": list(outputs),
        "responseStreamingSupported": streaming,
        "customizationsSupported": [],
        "inferenceTypesSupported": list(inference),
        "modelLifecycle": {"status": lifecycle},
    }


def inference_profile(profile_id: str, name: str, model_id: str) -> dict[str, Any]:
    """A system-defined cross-region `InferenceProfileSummary`."""
    regions = ("us-east-1", "us-east-2", "us-west-2")
    return {
        "inferenceProfileName": name,
        "description": f"Routes requests to {name} in multiple regions.",
        "createdAt": 1_725_000_000,
        "updatedAt": 1_725_000_000,
        "inferenceProfileArn": f"arn:aws:bedrock:{REGION}:{ACCOUNT}:inference-profile/{profile_id}",
        "models": [
            {"modelArn": f"arn:aws:bedrock:{region}::foundation-model/{model_id}"}
            for region in regions
        ],
        "inferenceProfileId": profile_id,
        "status": "ACTIVE",
        "type": "SYSTEM_DEFINED",
    }


def application_profile(profile_id: str, name: str, model_id: str) -> dict[str, Any]:
    """An application inference profile an account created: called by its ARN."""
    arn = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:application-inference-profile/{profile_id}"
    return {
        "inferenceProfileName": name,
        "createdAt": 1_725_000_000,
        "updatedAt": 1_725_000_000,
        "inferenceProfileArn": arn,
        "models": [{"modelArn": f"arn:aws:bedrock:{REGION}::foundation-model/{model_id}"}],
        "inferenceProfileId": profile_id,
        "status": "ACTIVE",
        "type": "APPLICATION",
    }


CLAUDE_HAIKU_35 = "anthropic.claude-3-5-haiku-20241022-v1:0"
CLAUDE_SONNET_37 = "anthropic.claude-3-7-sonnet-20250219-v1:0"

DEFAULT_MODELS: list[dict[str, Any]] = [
    foundation_model(
        "anthropic.claude-3-haiku-20240307-v1:0",
        "Claude 3 Haiku",
        "Anthropic",
        inputs=("TEXT", "IMAGE"),
    ),
    foundation_model(CLAUDE_HAIKU_35, "Claude 3.5 Haiku", "Anthropic"),
    # Newer models are reachable only through inference profiles.
    foundation_model(
        CLAUDE_SONNET_37,
        "Claude 3.7 Sonnet",
        "Anthropic",
        inputs=("TEXT", "IMAGE"),
        inference=("INFERENCE_PROFILE",),
    ),
    foundation_model(
        "amazon.nova-lite-v1:0", "Nova Lite", "Amazon", inputs=("TEXT", "IMAGE", "VIDEO")
    ),
    foundation_model("amazon.titan-text-express-v1", "Titan Text G1 - Express", "Amazon"),
    foundation_model(
        "amazon.titan-text-express-v1:0:8k",
        "Titan Text G1 - Express",
        "Amazon",
        inference=("PROVISIONED",),
    ),
    foundation_model("ai21.j2-ultra-v1", "Jurassic-2 Ultra", "AI21 Labs", streaming=False),
    foundation_model("cohere.command-text-v14", "Command", "Cohere", lifecycle="LEGACY"),
    foundation_model("cohere.command-r-v1:0", "Command R", "Cohere"),
    foundation_model("meta.llama3-8b-instruct-v1:0", "Llama 3 8B Instruct", "Meta"),
    foundation_model(
        "amazon.titan-embed-text-v2:0",
        "Titan Text Embeddings V2",
        "Amazon",
        outputs=("EMBEDDING",),
        streaming=False,
    ),
    foundation_model(
        "cohere.embed-english-v3",
        "Embed English",
        "Cohere",
        outputs=("EMBEDDING",),
        streaming=False,
    ),
    foundation_model(
        "stability.sd3-5-large-v1:0",
        "Stable Diffusion 3.5 Large",
        "Stability AI",
        outputs=("IMAGE",),
        streaming=False,
    ),
]

DEFAULT_PROFILES: list[dict[str, Any]] = [
    inference_profile(
        "us.anthropic.claude-3-5-haiku-20241022-v1:0", "US Claude 3.5 Haiku", CLAUDE_HAIKU_35
    ),
    inference_profile(
        "us.anthropic.claude-3-7-sonnet-20250219-v1:0", "US Claude 3.7 Sonnet", CLAUDE_SONNET_37
    ),
    inference_profile("us.amazon.nova-lite-v1:0", "US Nova Lite", "amazon.nova-lite-v1:0"),
    inference_profile(
        "us.meta.llama3-8b-instruct-v1:0", "US Llama 3 8B Instruct", "meta.llama3-8b-instruct-v1:0"
    ),
    inference_profile(
        "us.stability.sd3-5-large-v1:0", "US Stable Diffusion 3.5", "stability.sd3-5-large-v1:0"
    ),
]

_OPERATIONS = {
    "converse": "Converse",
    "converse-stream": "ConverseStream",
    "invoke": "InvokeModel",
    "invoke-with-response-stream": "InvokeModelWithResponseStream",
}
_NATIVE_ONLY = ("ai21.j2-", "cohere.command-text-", "cohere.command-light-text-")


@dataclass
class Reply:
    """What the fake model says, in Converse vocabulary; native families get it translated."""

    text: str = "Hello from the fake Bedrock!"
    chunks: int = 3
    stop_reason: str = "end_turn"
    input_tokens: int = 12
    output_tokens: int = 6
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    latency_ms: int = 42
    reasoning: str = ""
    # Calls made when the model is offered these tools: (name, input).
    tool_calls: Sequence[tuple[str, dict[str, Any]]] = ()

    def pieces(self) -> list[str]:
        return split(self.text, self.chunks)

    def usage(self) -> dict[str, int]:
        usage = {
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "totalTokens": self.input_tokens + self.output_tokens,
        }
        if self.cache_read_tokens is not None:
            usage["cacheReadInputTokens"] = self.cache_read_tokens
        if self.cache_write_tokens is not None:
            usage["cacheWriteInputTokens"] = self.cache_write_tokens
        return usage


@dataclass
class RecordedRequest:
    method: str
    raw_path: str
    operation: str
    model_id: str | None
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    client_port: int | None  # the client's TCP port: equal ports mean a reused connection


@dataclass
class _Fault:
    status: int
    error_type: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)


class FakeBedrock(NativeBodies):
    def __init__(
        self,
        *,
        models: Iterable[dict[str, Any]] | None = None,
        profiles: Iterable[dict[str, Any]] | None = None,
        profile_page_size: int = 2,
        reply: Reply | None = None,
    ) -> None:
        self.models = list(DEFAULT_MODELS if models is None else models)
        self.profiles = list(DEFAULT_PROFILES if profiles is None else profiles)
        self.profile_page_size = profile_page_size
        self.reply = reply or Reply()
        # Fault knobs.
        self.response_delay = 0.0
        self.chunk_delay = 0.0
        self.drop_after_chunks: int | None = None
        self.stream_exception: tuple[str, str] | None = None
        self.exception_after_chunks = 1
        self.denied_models: set[str] = set()
        self.usage_headers = True
        self.guardrails: dict[str, Guardrail] = {}
        self.cache = PromptCache()
        self._throttled: dict[str, int] = {}
        # Observations.
        self.requests: list[RecordedRequest] = []
        self.disconnected = asyncio.Event()
        self._faults: deque[_Fault] = deque()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_get("/foundation-models", self._list_foundation_models)
        app.router.add_get("/inference-profiles", self._list_inference_profiles)
        app.router.add_get("/inference-profiles/{tail:.+}", self._get_inference_profile)
        app.router.add_post("/model/{tail:.+}", self._runtime)
        # Cancel handlers when the client goes away, so a dropped stream is observed at once.
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- knobs -------------------------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 500,
        error_type: str = "InternalServerException",
        message: str = "The server encountered an internal error.",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next `n` requests (either service) with this error."""
        for _ in range(n):
            self._faults.append(_Fault(status, error_type, message, dict(headers or {})))

    def throttle_next(self, n: int = 1, *, retry_after: str | None = None) -> None:
        headers = {"Retry-After": retry_after} if retry_after else {}
        self.fail_next(
            n,
            status=429,
            error_type="ThrottlingException",
            message="Too many requests, please wait before trying again.",
            headers=headers,
        )

    def throttle_model(self, model_id: str, n: int = 1) -> None:
        """Throttle the next `n` runtime calls to this model only (its own quota ran out)."""
        self._throttled[model_id] = self._throttled.get(model_id, 0) + n

    def calls(self, operation: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.operation == operation]

    # -- helpers -----------------------------------------------------------------------------

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake up when the server shuts down so cleanup never waits on a stall."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), seconds)

    def _record(
        self, request: web.Request, operation: str, model_id: str | None, body: Any
    ) -> None:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.requests.append(
            RecordedRequest(
                method=request.method,
                raw_path=request.raw_path,
                operation=operation,
                model_id=model_id,
                query=dict(request.query),
                headers=dict(request.headers),
                body=body,
                client_port=peer[1] if peer else None,
            )
        )

    def _take_fault(self) -> web.Response | None:
        if not self._faults:
            return None
        fault = self._faults.popleft()
        return error(fault.status, fault.error_type, fault.message, fault.headers)

    def _profile_ids(self, profile: dict[str, Any]) -> set[str]:
        if profile["type"] == "APPLICATION":  # callable by ARN only
            return {profile["inferenceProfileArn"]}
        return {profile["inferenceProfileId"], profile["inferenceProfileArn"]}

    def _known_ids(self) -> set[str]:
        ids = {m["modelId"] for m in self.models}
        for profile in self.profiles:
            ids |= self._profile_ids(profile)
        return ids

    def _base_model(self, model_id: str) -> str:
        for profile in self.profiles:
            if model_id in self._profile_ids(profile):
                return str(profile["models"][0]["modelArn"].rsplit("/", 1)[-1])
        return model_id

    # -- control plane -----------------------------------------------------------------------

    async def _list_foundation_models(self, request: web.Request) -> web.Response:
        self._record(request, "ListFoundationModels", None, None)
        await self._sleep(self.response_delay)
        if fault := self._take_fault():
            return fault
        q = request.query
        models = [
            m
            for m in self.models
            if ("byProvider" not in q or m["providerName"].lower() == q["byProvider"].lower())
            and ("byOutputModality" not in q or q["byOutputModality"] in m["outputModalities"])
            and ("byInferenceType" not in q or q["byInferenceType"] in m["inferenceTypesSupported"])
        ]
        return web.json_response({"modelSummaries": models})

    async def _list_inference_profiles(self, request: web.Request) -> web.Response:
        self._record(request, "ListInferenceProfiles", None, None)
        await self._sleep(self.response_delay)
        if fault := self._take_fault():
            return fault
        q = request.query
        wanted = q.get("type", "SYSTEM_DEFINED")
        profiles = [p for p in self.profiles if p["type"] == wanted]
        start = int(q.get("nextToken", "0"))
        size = min(int(q.get("maxResults", "1000")), self.profile_page_size)
        page: dict[str, Any] = {"inferenceProfileSummaries": profiles[start : start + size]}
        if start + size < len(profiles):
            page["nextToken"] = str(start + size)
        return web.json_response(page)

    async def _get_inference_profile(self, request: web.Request) -> web.Response:
        identifier = unquote(request.raw_path.split("?", 1)[0].split("/", 2)[2])
        self._record(request, "GetInferenceProfile", identifier, None)
        if fault := self._take_fault():
            return fault
        for profile in self.profiles:
            if identifier in self._profile_ids(profile) | {profile["inferenceProfileId"]}:
                return web.json_response(profile)
        return error(404, "ResourceNotFoundException", "The inference profile was not found.")

    # -- runtime -----------------------------------------------------------------------------

    async def _runtime(self, request: web.Request) -> web.StreamResponse:
        # /model/<percent-encoded id>/<action>; split the raw path so an encoded '/' survives.
        _, _, encoded_id, action = request.raw_path.split("?", 1)[0].split("/", 3)
        model_id = unquote(encoded_id)
        operation = _OPERATIONS.get(action, action)
        raw = await request.read()
        body = json.loads(raw) if raw else None
        self._record(request, operation, model_id, body)

        await self._sleep(self.response_delay)
        if fault := self._take_fault():
            return fault
        if action not in _OPERATIONS:
            return error(404, "UnknownOperationException", f"Unknown operation {action}")
        if model_id not in self._known_ids():
            return error(400, "ValidationException", INVALID_MODEL_MESSAGE)
        if model_id in self.denied_models:
            return error(403, "AccessDeniedException", ACCESS_DENIED_MESSAGE)
        if self._throttled.get(model_id):
            self._throttled[model_id] -= 1
            return error(
                429, "ThrottlingException", "Too many requests, please wait before trying again."
            )

        base = self._base_model(model_id)
        if operation in ("Converse", "ConverseStream"):
            if base.startswith(_NATIVE_ONLY):
                return error(400, "ValidationException", "This model doesn't support conversation.")
            try:
                answer = self._rules.answer(
                    base, body, self.reply, stream=operation == "ConverseStream"
                )
            except ConverseError as exc:
                return error(exc.status, exc.code, exc.message)
            if operation == "Converse":
                return self._converse(answer)
            return await self._converse_stream(request, answer)
        blocked = self._native_guardrail(request, body)
        if isinstance(blocked, web.Response):
            return blocked
        if operation == "InvokeModel":
            return self._invoke(base, body, blocked)
        return await self._invoke_stream(request, base, body, blocked)

    @property
    def _rules(self) -> ConverseRules:
        return ConverseRules(self.cache, self.guardrails)

    def _native_guardrail(self, request: web.Request, body: Any) -> bool | web.Response:
        """InvokeModel takes its guardrail in headers; True when it blocks this prompt."""
        identifier = request.headers.get("X-Amzn-Bedrock-GuardrailIdentifier")
        if identifier is None:
            return False
        guardrail = self.guardrails.get(identifier)
        version = request.headers.get("X-Amzn-Bedrock-GuardrailVersion")
        if guardrail is None or version != guardrail.version:
            return error(
                400,
                "ValidationException",
                "The guardrail identifier or version provided is invalid.",
            )
        return guardrail.word.lower() in json.dumps(body).lower()

    def _converse(self, answer: Answer) -> web.Response:
        reply = self.reply
        content: list[dict[str, Any]] = []
        if answer.reasoning:
            text = {"text": answer.reasoning, "signature": "sig"}
            content.append({"reasoningContent": {"reasoningText": text}})
        if answer.text:
            content.append({"text": answer.text})
        for use_id, name, arguments in answer.calls:
            content.append({"toolUse": {"toolUseId": use_id, "name": name, "input": arguments}})
        response: dict[str, Any] = {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": answer.stop_reason,
            "usage": answer.usage,
            "metrics": {"latencyMs": reply.latency_ms},
        }
        if answer.trace:
            response["trace"] = answer.trace
        return web.json_response(response)

    def _converse_frames(self, answer: Answer) -> list[tuple[bytes, bool]]:
        """(frame, is_output_chunk) pairs, in the order ConverseStream sends them."""
        frames: list[tuple[bytes, bool]] = [
            (event_frame("messageStart", {"role": "assistant"}), False)
        ]

        def block(index: int, delta: dict[str, Any], chunk: bool = True) -> None:
            payload = {"delta": delta, "contentBlockIndex": index}
            frames.append((event_frame("contentBlockDelta", payload), chunk))

        def stop(index: int) -> None:
            frames.append((event_frame("contentBlockStop", {"contentBlockIndex": index}), False))

        index = 0
        if answer.reasoning:
            for piece in split(answer.reasoning, 2):
                block(index, {"reasoningContent": {"text": piece}}, chunk=False)
            block(index, {"reasoningContent": {"signature": "sig"}}, chunk=False)
            stop(index)
            index += 1
        if answer.text or not answer.calls:
            for piece in split(answer.text, self.reply.chunks):
                block(index, {"text": piece})
            stop(index)
            index += 1
        for use_id, name, arguments in answer.calls:
            start = {"start": {"toolUse": {"toolUseId": use_id, "name": name}}}
            frames.append(
                (event_frame("contentBlockStart", {**start, "contentBlockIndex": index}), False)
            )
            for piece in split(json.dumps(arguments), 2):
                block(index, {"toolUse": {"input": piece}})
            stop(index)
            index += 1
        frames.append((event_frame("messageStop", {"stopReason": answer.stop_reason}), False))
        metadata: dict[str, Any] = {
            "usage": answer.usage,
            "metrics": {"latencyMs": self.reply.latency_ms},
        }
        if answer.trace:
            metadata["trace"] = answer.trace
        frames.append((event_frame("metadata", metadata), False))
        return frames

    async def _converse_stream(self, request: web.Request, answer: Answer) -> web.StreamResponse:
        return await self._write_stream(request, self._converse_frames(answer), {})

    async def _write_stream(
        self, request: web.Request, frames: list[tuple[bytes, bool]], headers: Mapping[str, str]
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": EVENTSTREAM, "x-amzn-RequestId": str(uuid.uuid4()), **headers}
        )
        await response.prepare(request)
        sent = 0
        try:
            for frame, is_chunk in frames:
                if is_chunk and sent and self.chunk_delay:
                    await self._sleep(self.chunk_delay)
                await response.write(frame)
                sent += is_chunk
                if (
                    is_chunk
                    and self.drop_after_chunks is not None
                    and sent >= self.drop_after_chunks
                ):
                    assert request.transport is not None
                    request.transport.abort()
                    return response
                if is_chunk and self.stream_exception and sent >= self.exception_after_chunks:
                    await response.write(exception_frame(*self.stream_exception))
                    break
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnected.set()
            raise
        return response


__all__ = [
    "BLOCKED_MESSAGE",
    "DEFAULT_MODELS",
    "DEFAULT_PROFILES",
    "FakeBedrock",
    "Guardrail",
    "RecordedRequest",
    "Reply",
    "application_profile",
    "foundation_model",
    "inference_profile",
]
