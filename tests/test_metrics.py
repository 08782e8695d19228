"""`/metrics` through the real app, parsed with prometheus-client's own parser: what moves
after a chat, a failed call and a rate-limited call; labels; who may scrape; the model-call
log line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families

from tests.chat_support import eventually, new_chat, open_stream
from tests.fakes.bedrock import FakeBedrock
from tests.fakes.ollama import FakeModel, FakeOllama
from tests.hub import Client, Hub, hub_settings, started_hub
from tests.module_fixtures import module_hub_fixtures

CHAT = "llama3.2:1b"
TOKEN = "metrics-token-" + "m" * 20
REMOTE = {"X-Forwarded-For": "203.0.113.7"}  # the test hub trusts its loopback peer as a proxy

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


module_fake, fake, hub = module_hub_fixtures(
    lambda: [FakeModel(CHAT, reply="one two three four five six")],
    limits={"requests_per_minute": 0},
    metrics_token=TOKEN,
    health_interval=0.2,
)


@dataclass
class People:
    admin: Client
    user: Client
    user_key: Client


@pytest.fixture(scope="module")
async def people(hub: Hub) -> People:
    admin = await hub.signup("admin@example.com")
    user = await hub.signup("user@example.com")
    # No title calls in the background: each test counts exactly the calls it makes.
    await user.patch("/api/preferences", {"title_generation": {"enabled": False}})
    return People(admin, user, await hub.key_client(user))


async def scrape(client: Client, headers: dict[str, str] | None = None) -> Samples:
    response = await client.get("/metrics", headers=headers)
    assert response.status == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    return {dict(ls)[label] for (n, ls) in samples if n == name and label in dict(ls)}


def chat_body(model: str = CHAT, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "Hi"}], **extra}


# -- what moves ---------------------------------------------------------------------------------


async def test_a_chat_moves_call_token_and_http_metrics(
    hub: Hub, people: People, fake: FakeOllama
) -> None:
    local = hub.client()
    fake.chunk_delay = 0.01  # some time between first and last token, for the output rate
    before = await scrape(local)
    whole = await people.user_key.post("/v1/chat/completions", chat_body())
    assert whole.status == 200, whole.text
    chat = await new_chat(people.user, model=CHAT)
    stream = await open_stream(
        people.user, "POST", f"/api/chats/{chat['id']}/messages", {"content": "Hello"}
    )
    events = await stream.all()
    stream.close()
    assert events[-1].event == "end" and events[-1].data["status"] == "complete"
    after = await scrape(local)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    call = {"provider": "ollama", "model": CHAT}
    assert moved("llmhub_model_calls_total", **call, outcome="complete") == 2
    assert moved("llmhub_model_ttft_seconds_count", **call) == 2
    assert moved("llmhub_model_call_duration_seconds_count", **call) == 2
    # Only the streamed answer has a time between its first and last token to rate.
    assert moved("llmhub_model_output_tokens_per_second_count", **call) == 1
    output = whole.body["usage"]["completion_tokens"] + events[-1].data["usage"]["output_tokens"]
    assert moved("llmhub_model_tokens_total", **call, kind="output") == output
    assert moved("llmhub_model_tokens_total", **call, kind="input") > 0

    # HTTP metrics carry the route template, never the path with its ids.
    completions = {"method": "POST", "route": "/v1/chat/completions", "status": "200"}
    assert moved("llmhub_http_requests_total", **completions) == 1
    messages = {"method": "POST", "route": "/api/chats/{chat_id}/messages", "status": "200"}
    assert moved("llmhub_http_requests_total", **messages) == 1
    assert moved("llmhub_http_request_duration_seconds_count", method="POST",
                 route="/api/chats/{chat_id}/messages") == 1  # fmt: skip
    routes = label_values(after, "llmhub_http_requests_total", "route")
    assert not any(chat["id"] in route for route in routes), routes


async def test_a_failed_call_counts_as_an_upstream_error(
    hub: Hub, people: People, fake: FakeOllama
) -> None:
    local = hub.client()
    before = await scrape(local)
    fake.fail_next(status=500, message="llama runner process has terminated")
    failed = await people.user_key.post("/v1/chat/completions", chat_body())
    assert failed.status == 502, failed.text
    after = await scrape(local)
    errors = {"provider": "ollama", "kind": "upstream_error"}
    assert (
        value(after, "llmhub_upstream_errors_total", **errors)
        - value(before, "llmhub_upstream_errors_total", **errors)
        == 1
    )
    outcome = {"provider": "ollama", "model": CHAT, "outcome": "error"}
    assert (
        value(after, "llmhub_model_calls_total", **outcome)
        - value(before, "llmhub_model_calls_total", **outcome)
        == 1
    )


async def test_a_rate_limited_call_is_counted_as_a_rejection(
    hub: Hub, people: People, fake: FakeOllama
) -> None:
    local = hub.client()
    limited = await hub.key_client(people.user, limits={"requests_per_minute": 1})
    before = await scrape(local)
    assert (await limited.post("/v1/chat/completions", chat_body())).status == 200
    refused = await limited.post("/v1/chat/completions", chat_body())
    assert (refused.status, refused.error_code) == (429, "rate_limit_requests")
    after = await scrape(local)
    reason = {"reason": "rate_limit_requests"}
    assert (
        value(after, "llmhub_model_call_rejections_total", **reason)
        - value(before, "llmhub_model_call_rejections_total", **reason)
        == 1
    )


async def test_models_outside_the_catalog_share_one_label(
    hub: Hub, people: People, fake: FakeOllama
) -> None:
    local = hub.client()
    before = await scrape(local)
    for name in ("ollama/made-up:1b", "ollama/made-up:2b"):
        missing = await people.user_key.post("/v1/chat/completions", chat_body(name))
        assert missing.status == 404, missing.text
    after = await scrape(local)
    models = label_values(after, "llmhub_model_calls_total", "model")
    assert not any(m.startswith("made-up") for m in models), models
    other = {"provider": "ollama", "model": "other", "outcome": "error"}
    assert (
        value(after, "llmhub_model_calls_total", **other)
        - value(before, "llmhub_model_calls_total", **other)
        == 2
    )


async def test_pool_process_and_provider_figures(
    hub: Hub, people: People, fake: FakeOllama
) -> None:
    # `people` signed up: the pool has lent connections, whichever test of the module ran first.
    samples = await scrape(hub.client())
    settings = hub.app.state.settings
    assert value(samples, "llmhub_db_pool_max") == settings.db_pool_max
    assert 1 <= value(samples, "llmhub_db_pool_size") <= settings.db_pool_max
    assert 0 <= value(samples, "llmhub_db_pool_in_use") <= value(samples, "llmhub_db_pool_size")
    assert ("llmhub_db_pool_waiting", frozenset()) in samples
    assert value(samples, "llmhub_db_pool_acquire_seconds_count") > 0
    assert value(samples, "process_resident_memory_bytes") > 0
    assert value(samples, "process_open_fds") > 0
    assert ("llmhub_event_loop_lag_seconds", frozenset()) in samples
    assert value(samples, "llmhub_provider_up", provider="ollama") == 1
    assert ("llmhub_active_generations", frozenset()) in samples


async def test_ollama_loaded_models_are_polled_in_the_background(
    hub: Hub, people: People, fake: FakeOllama
) -> None:
    assert (await people.user_key.post("/v1/chat/completions", chat_body())).status == 200
    assert CHAT in fake.loaded  # the fake now reports it in /api/ps

    async def loaded() -> Samples | None:
        samples = await scrape(hub.client())
        return samples if value(samples, "llmhub_ollama_loaded_models") == 1 else None

    samples = await eventually(loaded, what="the loaded model in /metrics")
    size = fake.models[CHAT].size
    assert value(samples, "llmhub_ollama_model_memory_bytes", model=CHAT, where="vram") == size
    assert value(samples, "llmhub_ollama_model_memory_bytes", model=CHAT, where="ram") > 0
    assert 0 < value(samples, "llmhub_ollama_model_gpu_ratio", model=CHAT) < 1


async def test_bedrock_throttles_and_retries_are_counted(
    database_url: str, data_dir: Any, fake: FakeOllama, aws_env: None
) -> None:
    bedrock_chat = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
    async with FakeBedrock() as bedrock:
        settings = hub_settings(
            database_url,
            data_dir,
            mode="hybrid",
            ollama={"url": fake.url},
            bedrock={"endpoint_url": bedrock.url, "max_attempts": 3},
            health_interval=3600,  # no probe may take the injected throttles
        )
        async with started_hub(settings) as hybrid:
            api = await hybrid.key_client(await hybrid.signup("admin@example.com"))
            bedrock.fail_next(1)  # a transient 500: retried
            answered = await api.post("/v1/chat/completions", chat_body(bedrock_chat))
            assert answered.status == 200, answered.text  # the second attempt got through
            # A throttle is not retried in-process (the caller's SDK retries after the 429).
            bedrock.throttle_next(1)
            throttled = await api.post("/v1/chat/completions", chat_body(bedrock_chat))
            assert throttled.status == 429, throttled.text
            samples = await scrape(hybrid.client())
    assert value(samples, "llmhub_bedrock_retries_total") == 1
    assert value(samples, "llmhub_bedrock_throttles_total") == 1
    done = {"provider": "bedrock", "model": bedrock_chat, "outcome": "complete"}
    assert value(samples, "llmhub_model_calls_total", **done) == 1


# -- who may scrape -----------------------------------------------------------------------------


async def test_scraping_is_for_loopback_token_holders_and_admins(hub: Hub, people: People) -> None:
    assert (await hub.client().get("/metrics")).status == 200  # loopback, the default
    anonymous = await hub.client().get("/metrics", headers=REMOTE)
    assert (anonymous.status, anonymous.error_code) == (403, "metrics_forbidden")
    token = {**REMOTE, "Authorization": f"Bearer {TOKEN}"}
    assert (await hub.client().get("/metrics", headers=token)).status == 200
    wrong = {**REMOTE, "Authorization": f"Bearer {TOKEN}x"}
    assert (await hub.client().get("/metrics", headers=wrong)).status == 403
    assert (await people.admin.get("/metrics", headers=REMOTE)).status == 200
    assert (await people.user.get("/metrics", headers=REMOTE)).status == 403
    assert (await people.user_key.get("/metrics", headers=REMOTE)).status == 403


async def test_loopback_can_be_refused_too(
    database_url: str, data_dir: Any, fake: FakeOllama
) -> None:
    settings = hub_settings(
        database_url, data_dir, ollama={"url": fake.url}, metrics_loopback=False
    )
    async with started_hub(settings) as closed:
        refused = await closed.client().get("/metrics")
        assert (refused.status, refused.error_code) == (403, "metrics_forbidden")
        admin = await closed.signup("admin@example.com")
        assert (await admin.get("/metrics")).status == 200


# -- the model-call log line --------------------------------------------------------------------


async def test_every_call_logs_one_line_with_who_what_and_how_long(
    hub: Hub, people: People, fake: FakeOllama
) -> None:
    me = (await people.user.get("/api/auth/me")).body["user"]["id"]
    with structlog.testing.capture_logs() as logged:
        ok = await people.user_key.post(
            "/v1/chat/completions", chat_body(), headers={"X-Request-ID": "trace-ok"}
        )
        fake.fail_next(status=503, message="server busy")
        busy = await people.user_key.post(
            "/v1/chat/completions", chat_body(), headers={"X-Request-ID": "trace-busy"}
        )
    assert (ok.status, busy.status) == (200, 503)
    calls = {line["request_id"]: line for line in logged if line["event"] == "model call"}
    assert set(calls) == {"trace-ok", "trace-busy"}
    line = calls["trace-ok"]
    assert line["user_id"] == me and line["key_id"]
    assert (line["provider"], line["model"], line["outcome"]) == ("ollama", CHAT, "complete")
    assert line["output_tokens"] == ok.body["usage"]["completion_tokens"]
    assert line["input_tokens"] == ok.body["usage"]["prompt_tokens"]
    assert line["ttft_ms"] is not None and line["duration_ms"] is not None
    assert line["error_kind"] is None
    failed = calls["trace-busy"]
    assert (failed["outcome"], failed["error_kind"]) == ("error", "provider_unavailable")
