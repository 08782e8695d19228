"""The Amazon Bedrock provider over aioboto3: clients, catalog, and which API serves a call.

Chat goes through Converse/ConverseStream for every family that supports it
(`converse_request`, `converse_response`); AI21 Jurassic-2 and legacy Cohere Command get their
native InvokeModel bodies (`native`); embeddings use InvokeModel with Titan or Cohere bodies.
One long-lived client per service (`bedrock` for the catalog, `bedrock-runtime` for inference)
is created on first use and shared by all requests; it retries nothing itself: `backoff` retries
transient failures and cools down a throttled model, per model.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import AsyncExitStack
from typing import Any, ClassVar, Literal

import aioboto3
from aiobotocore.config import AioConfig

from ..base import (
    ChatEvent,
    ChatRequest,
    EmbedRequest,
    EmbedResult,
    ModelInfo,
    Provider,
    ProviderHealth,
    TextDelta,
)
from ..errors import ModelNotFound, ProviderError, RateLimited, Unsupported
from . import models, native
from .backoff import ModelBackoff
from .converse_request import ConversePlan, ConverseSettings, plan_converse
from .converse_response import StreamState, whole_events
from .embeddings import embed_cohere, embed_titan
from .errors import MAPPED, map_error, translated

Service = Literal["bedrock", "bedrock-runtime"]

HEALTH_TIMEOUT = 5.0
HEALTH_TTL = 10.0
MAX_POOL_CONNECTIONS = 64
ENDED_EARLY = "Bedrock stream ended before the model finished"


class BedrockProvider(Provider):
    name: ClassVar[str] = "bedrock"

    def __init__(
        self,
        *,
        region: str,
        profile: str | None = None,
        endpoint_url: str | None = None,
        runtime_endpoint_url: str | None = None,
        allowed_models: Sequence[str] = (),
        max_attempts: int = 3,
        retry_delay: float = 0.25,
        connect_timeout: float = 5.0,
        read_timeout: float = 300.0,
        default_max_tokens: int = 2048,
        prompt_caching: bool = False,
        guardrail_id: str | None = None,
        guardrail_version: str = "DRAFT",
        guardrail_stream_mode: str = "sync",
    ) -> None:
        self._region = region
        self._profile = profile
        self._endpoints: dict[Service, str | None] = {
            "bedrock": endpoint_url,
            "bedrock-runtime": runtime_endpoint_url or endpoint_url,
        }
        self._allowed = frozenset(allowed_models)
        self._config = AioConfig(
            # One attempt: `ModelBackoff` retries, per model (see its module).
            retries={"mode": "standard", "total_max_attempts": 1},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=MAX_POOL_CONNECTIONS,
        )
        self.backoff = ModelBackoff(max_attempts=max_attempts, retry_delay=retry_delay)
        self.attempts = self.backoff.attempts  # retries and throttles, for the app's metrics
        self._default_max_tokens = default_max_tokens
        self._guardrail = (guardrail_id, guardrail_version) if guardrail_id else None
        self._settings = ConverseSettings(
            prompt_caching=prompt_caching,
            guardrail_id=guardrail_id,
            guardrail_version=guardrail_version,
            guardrail_stream_mode=guardrail_stream_mode,
            default_max_tokens=default_max_tokens,
        )
        self._clients: dict[Service, Any] = {}
        self._stack: AsyncExitStack | None = None
        self._lock = asyncio.Lock()
        self._streaming: dict[str, bool] = {}
        self._bases: dict[str, str] = {}  # application profile ARN → foundation model id
        self._health: tuple[float, ProviderHealth] | None = None

    # -- clients ------------------------------------------------------------------------------

    async def _client(self, service: Service) -> Any:
        client = self._clients.get(service)
        if client is not None:
            return client
        async with self._lock:
            if service not in self._clients:
                if self._stack is None:
                    self._stack = AsyncExitStack()
                with translated(None):
                    session = aioboto3.Session(profile_name=self._profile, region_name=self._region)
                    self._clients[service] = await self._stack.enter_async_context(
                        session.client(
                            service, endpoint_url=self._endpoints[service], config=self._config
                        )
                    )
            return self._clients[service]

    async def aclose(self) -> None:
        async with self._lock:
            stack, self._stack = self._stack, None
            self._clients.clear()
            if stack is not None:
                await stack.aclose()

    # -- catalog ------------------------------------------------------------------------------

    async def _foundation_models(self) -> list[dict[str, Any]]:
        client = await self._client("bedrock")
        with translated(None):
            response = await client.list_foundation_models()
        return list(response.get("modelSummaries", []))

    async def _inference_profiles(self, **filters: str) -> list[dict[str, Any]]:
        client = await self._client("bedrock")
        profiles: list[dict[str, Any]] = []
        params: dict[str, Any] = dict(filters)
        while True:
            with translated(None):
                page = await client.list_inference_profiles(**params)
            profiles += page.get("inferenceProfileSummaries", [])
            if not page.get("nextToken"):
                return profiles
            params["nextToken"] = page["nextToken"]

    async def list_models(self) -> list[ModelInfo]:
        summaries = await self._foundation_models()
        # Listing without a type gives the system-defined (cross-region) profiles only.
        profiles = await self._inference_profiles()
        profiles += await self._inference_profiles(typeEquals="APPLICATION")
        by_id = {s["modelId"]: s for s in summaries}
        found = [
            models.model_info(s["modelId"], s)
            for s in summaries
            if models.is_usable(s) and models.is_on_demand(s)
        ]
        seen = {m.id for m in found}
        for profile in profiles:
            summary = by_id.get(models.profile_model(profile))
            model_id = models.profile_model_id(profile)
            if summary is None or not models.is_usable(summary) or model_id in seen:
                continue
            if profile.get("status") != "ACTIVE":
                continue
            seen.add(model_id)
            if models.is_application_profile(model_id):
                self._bases[model_id] = summary["modelId"]
            found.append(models.model_info(model_id, summary, profile.get("inferenceProfileName")))
        if self._allowed:
            found = [m for m in found if m.id in self._allowed]
        self._streaming = {m.id: m.capabilities.streaming for m in found}
        return found

    def _check_allowed(self, model: str) -> None:
        if self._allowed and model not in self._allowed:
            raise ModelNotFound(f"Bedrock model {model!r} is not enabled on this hub")

    async def _features(self, model_id: str) -> models.Features:
        """What the model can do; an application profile is looked up once if the catalog has
        not listed it (it may be called by ARN without ListInferenceProfiles access)."""
        base = self._bases.get(model_id)
        if base is None and models.is_application_profile(model_id):
            client = await self._client("bedrock")
            try:
                with translated(model_id):
                    profile = await client.get_inference_profile(
                        inferenceProfileIdentifier=model_id
                    )
            except ProviderError:
                base = models.base_model_id(model_id)  # Bedrock judges the call itself
            else:
                base = self._bases[model_id] = models.profile_model(profile)
        return models.Features.of(base or models.base_model_id(model_id))

    # -- chat ---------------------------------------------------------------------------------

    async def chat(self, request: ChatRequest) -> AsyncGenerator[ChatEvent, None]:
        self._check_allowed(request.model)
        features = await self._features(request.model)
        family = features.family
        if family in ("titan_embed", "cohere_embed"):
            raise Unsupported(f"{request.model} is an embedding model and cannot chat")
        if family == "jurassic":
            events = self._chat_jurassic(request, features)
        elif family == "cohere_legacy" and request.stream:
            events = self._chat_cohere_stream(request, features)
        elif family == "cohere_legacy":
            events = self._chat_cohere(request, features)
        else:
            plan = plan_converse(request, request.model, features, self._settings)
            streams = self._streaming.get(request.model, True)
            if request.stream and streams and not plan.whole:
                events = self._chat_converse_stream(request, plan)
            else:
                events = self._chat_converse(request, plan)
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()

    async def _call(self, model: str, operation: str, **params: Any) -> Any:
        """One runtime operation, with retries and the model's throttle cool-down."""
        client = await self._client("bedrock-runtime")

        async def attempt() -> Any:
            with translated(model):
                return await getattr(client, operation)(**params)

        return await self.backoff.call(model, attempt)

    def _stream_failure(self, model: str, exc: BaseException) -> ProviderError:
        error = map_error(exc, model)
        if isinstance(error, RateLimited):
            error.retry_after = self.backoff.throttled(model, error.retry_after)
        return error

    async def _chat_converse(
        self, request: ChatRequest, plan: ConversePlan
    ) -> AsyncGenerator[ChatEvent, None]:
        response = await self._call(request.model, "converse", **plan.params)
        for event in whole_events(response, plan):
            yield event

    async def _chat_converse_stream(
        self, request: ChatRequest, plan: ConversePlan
    ) -> AsyncGenerator[ChatEvent, None]:
        response = await self._call(request.model, "converse_stream", **plan.params)
        stream = response["stream"]
        state = StreamState(plan)
        try:
            try:
                async for event in stream:
                    if (chat_event := state.handle(event)) is not None:
                        state.emitted = True
                        yield chat_event
            except MAPPED as exc:
                error = self._stream_failure(request.model, exc)
                if not state.emitted:
                    raise error from exc
                yield state.error(request, error.message)
                return
        finally:
            stream.close()  # drops the connection, so Bedrock stops generating
        if state.stop_reason is None:
            yield state.error(request, ENDED_EARLY)
            return
        yield state.end(request)

    def _guardrail_params(self) -> dict[str, str]:
        if self._guardrail is None:
            return {}
        guardrail_id, version = self._guardrail
        return {"guardrailIdentifier": guardrail_id, "guardrailVersion": version}

    async def _invoke_json(
        self, model: str, body: Mapping[str, Any], **extra: str
    ) -> tuple[dict[str, Any], Mapping[str, str]]:
        response = await self._call(
            model,
            "invoke_model",
            modelId=model,
            body=json.dumps(body),
            contentType="application/json",
            accept="application/json",
            **extra,
        )
        with translated(model):
            async with response["body"] as stream:
                payload = json.loads(await stream.read())
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        return payload, headers

    async def _chat_jurassic(
        self, request: ChatRequest, features: models.Features
    ) -> AsyncGenerator[ChatEvent, None]:
        body = native.jurassic_body(request, features, self._default_max_tokens)
        payload, headers = await self._invoke_json(request.model, body, **self._guardrail_params())
        text = payload["completions"][0]["data"]["text"]
        if text:
            yield TextDelta(text)
        usage = native.native_usage(headers, None, body["prompt"], text)
        yield native.jurassic_end(payload, usage)

    async def _chat_cohere(
        self, request: ChatRequest, features: models.Features
    ) -> AsyncGenerator[ChatEvent, None]:
        body = native.cohere_command_body(request, features, self._default_max_tokens, stream=False)
        payload, headers = await self._invoke_json(request.model, body, **self._guardrail_params())
        generation = payload["generations"][0]
        text = native.cohere_text(generation.get("text", ""))
        if text:
            yield TextDelta(text)
        usage = native.native_usage(headers, None, body["prompt"], text)
        action = payload.get(native.GUARDRAIL_ACTION)
        yield native.cohere_end({**generation, native.GUARDRAIL_ACTION: action}, usage)

    async def _chat_cohere_stream(
        self, request: ChatRequest, features: models.Features
    ) -> AsyncGenerator[ChatEvent, None]:
        body = native.cohere_command_body(request, features, self._default_max_tokens, stream=True)
        response = await self._call(
            request.model,
            "invoke_model_with_response_stream",
            modelId=request.model,
            body=json.dumps(body),
            contentType="application/json",
            accept="application/json",
            **self._guardrail_params(),
        )
        stream = response["body"]
        output: list[str] = []
        final: Mapping[str, Any] = {}
        error: str | None = ENDED_EARLY
        try:
            async for event in stream:
                if "chunk" not in event:
                    continue  # an event type this botocore's service model does not know
                data = json.loads(event["chunk"]["bytes"])
                if text := native.cohere_text(data.get("text") or ""):
                    output.append(text)
                    yield TextDelta(text)
                if data.get("is_finished"):
                    final, error = data, None
        except MAPPED as exc:
            mapped = self._stream_failure(request.model, exc)
            if not output:
                raise mapped from exc
            error = mapped.message
        finally:
            stream.close()  # drops the connection, so Bedrock stops generating
        metrics = final.get("amazon-bedrock-invocationMetrics")
        usage = native.native_usage({}, metrics, body["prompt"], "".join(output))
        yield native.cohere_end(final, usage, error)

    # -- embeddings ---------------------------------------------------------------------------

    async def embed(self, request: EmbedRequest) -> EmbedResult:
        self._check_allowed(request.model)
        features = await self._features(request.model)
        if features.family == "titan_embed":
            return await embed_titan(request, features.base, self._invoke_json)
        if features.family == "cohere_embed":
            return await embed_cohere(request, self._invoke_json)
        raise Unsupported(f"{request.model} is not an embedding model")

    # -- health -------------------------------------------------------------------------------

    async def health(self) -> ProviderHealth:
        now = time.monotonic()
        if self._health is not None and now - self._health[0] < HEALTH_TTL:
            return self._health[1]
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT):
                await self._foundation_models()
        except TimeoutError:
            result = ProviderHealth(ok=False, detail="Bedrock did not answer in time")
        except ProviderError as exc:
            result = ProviderHealth(ok=False, detail=exc.message)
        else:
            result = ProviderHealth(ok=True, latency_ms=(time.monotonic() - now) * 1000)
        self._health = (time.monotonic(), result)
        return result
