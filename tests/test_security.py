"""Attacks and odd input against accounts and access: each test pins a bug that was found."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from llmhub import observability
from llmhub.config import Settings
from tests.hub import Client, Hub, assert_error, running_hub

PASSWORD = "correct horse battery"
JSON = {"Content-Type": "application/json"}


async def user_id(client: Client) -> str:
    return (await client.get("/api/auth/me")).body["user"]["id"]


# -- odd JSON never becomes a 500 ------------------------------------------------------------------


async def test_nul_and_lone_surrogates_in_strings_are_400(hub: Hub) -> None:
    """PostgreSQL refuses NUL in text, and a lone surrogate cannot be encoded at all."""
    admin = await hub.signup("admin@example.com")
    alice = await hub.signup("alice@example.com")
    alice_id = await user_id(alice)
    attempts: list[tuple[Client, str, str, bytes]] = [
        (hub.client(), "POST", "/api/auth/login", b'{"email":"a\\u0000@b.co","password":"x"}'),
        (
            hub.client(),
            "POST",
            "/api/auth/login",
            b'{"email":"alice@example.com","password":"\\ud800 and more"}',
        ),
        (
            hub.client(),
            "POST",
            "/api/auth/signup",
            b'{"email":"b\\u0000@b.co","password":"long enough"}',
        ),
        (
            hub.client(),
            "POST",
            "/api/auth/signup",
            b'{"email":"c@b.co","password":"long enough","display_name":"\\u0000"}',
        ),
        (
            hub.client(),
            "POST",
            "/api/auth/signup",
            b'{"email":"d@b.co","password":"long \\udfff enough"}',
        ),
        (alice, "POST", "/api/keys", b'{"name":"a\\u0000b"}'),
        (alice, "POST", "/api/keys", b'{"allowed_models":["m\\u0000"]}'),
        (admin, "PATCH", f"/api/admin/users/{alice_id}", b'{"display_name":"x\\u0000"}'),
    ]
    for client, method, path, body in attempts:
        response = await client.request(method, path, data=body, headers=JSON)
        assert_error(response, 400, "validation_error")


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,  # deeper than the parser's recursion limit
        b'{"email": ' + b"1" * 5000 + b', "password": "x"}',  # over int's digit limit
    ],
)
async def test_pathological_json_is_400(hub: Hub, body: bytes) -> None:
    response = await hub.client().request("POST", "/api/auth/login", data=body, headers=JSON)
    assert_error(response, 400, "invalid_json")


async def test_far_future_key_expiry_is_400(hub: Hub) -> None:
    alice = await hub.signup("alice@example.com")
    # Valid ISO 8601, but past datetime.max once in UTC.
    response = await alice.post("/api/keys", {"expires_at": "9999-12-31T23:59:59-23:59"})
    assert_error(response, 400, "validation_error")
    assert (await alice.get("/api/keys")).body["data"] == []


async def test_admin_user_filter_rejects_unknown_roles(hub: Hub) -> None:
    admin = await hub.signup("admin@example.com")
    for role in ("%00", "superuser"):
        assert_error(await admin.get(f"/api/admin/users?role={role}"), 400, "validation_error")
    assert len((await admin.get("/api/admin/users?role=admin")).body["data"]) == 1


async def test_control_characters_in_names_are_refused(hub: Hub) -> None:
    """Emails and names are printed by `llmhub users list` and `keys list` in a terminal."""
    response = await hub.client().post(
        "/api/auth/signup", {"email": "\x1b]0;owned\x07x@b.co", "password": PASSWORD}
    )
    assert_error(response, 400, "validation_error")
    alice = await hub.signup("alice@example.com")
    assert_error(await alice.post("/api/keys", {"name": "\x1b[2Jk"}), 400, "validation_error")
    response = await alice.post("/api/keys", {"name": "café 東京"})
    assert response.status == 201


# -- CSRF and same-origin checks -------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://127.0.0.1:abc"},
        {"Referer": "http://[::1/page"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:99999"},
    ],
)
async def test_malformed_origin_is_refused_not_500(hub: Hub, headers: dict[str, str]) -> None:
    await hub.signup("alice@example.com")
    login = await hub.client().post(
        "/api/auth/login", {"email": "alice@example.com", "password": PASSWORD}, headers=headers
    )
    assert_error(login, 403, "csrf_failed")
    alice = hub.client()
    await alice.post("/api/auth/login", {"email": "alice@example.com", "password": PASSWORD})
    assert_error(await alice.post("/api/keys", {}, headers=headers), 403, "csrf_failed")


async def test_restricted_key_cannot_mint_an_unrestricted_one(hub: Hub) -> None:
    alice = await hub.signup("alice@example.com")
    scoped = await hub.key_client(alice, allowed_models=["llama3.2:1b"])
    response = await scoped.post("/api/keys", {"name": "escape"})
    assert_error(response, 403, "key_scope")
    # A key without restrictions is the user's full credential and may still manage keys.
    full = await hub.key_client(alice)
    assert (await full.post("/api/keys", {"name": "from a script"})).status == 201


# -- login throttling ------------------------------------------------------------------------------


def login(client: Client, email: str, password: str, ip: str) -> Any:
    # The test server trusts X-Forwarded-For from 127.0.0.1, as `serve` does in local mode.
    return client.post(
        "/api/auth/login",
        {"email": email, "password": password},
        headers={"X-Forwarded-For": ip},
    )


async def test_per_account_throttle_ignores_spelling_variants(hub: Hub) -> None:
    await hub.signup("alice@example.com")
    variants = [
        "alice@example.com",
        " alice@example.com",
        "alice@example.com ",
        "\talice@example.com",
        "  alice@example.com",
    ]
    for n, email in enumerate(variants):
        response = await login(hub.client(), email, "wrong password", f"198.51.100.{n}")
        assert response.status == 401
    response = await login(hub.client(), "ALICE@example.com\n", PASSWORD, "198.51.100.99")
    assert_error(response, 429, "login_throttled")


async def test_parallel_guesses_do_not_slip_past_the_throttle(hub: Hub) -> None:
    await hub.signup("alice@example.com")
    responses = await asyncio.gather(
        *(
            login(hub.client(), "alice@example.com", f"guess {n}", f"198.51.100.{n}")
            for n in range(20)
        )
    )
    statuses = sorted(r.status for r in responses)
    assert statuses.count(401) <= 5, statuses
    assert statuses.count(429) == 20 - statuses.count(401)


async def test_successful_sign_ins_do_not_count_against_an_address(hub: Hub) -> None:
    await hub.signup("alice@example.com")
    for _ in range(8):  # a busy office behind one NAT address
        assert (await login(hub.client(), "alice@example.com", PASSWORD, "192.0.2.1")).status == 200


async def test_ipv6_addresses_share_their_64(hub: Hub) -> None:
    for n in range(5):
        response = await login(hub.client(), f"nobody{n}@example.com", "whatever", f"2001:db8::{n}")
        assert response.status == 401
    response = await login(hub.client(), "other@example.com", "whatever", "2001:db8::beef:1")
    assert_error(response, 429, "login_throttled")


async def test_current_password_guesses_are_throttled_too(hub: Hub) -> None:
    """A stolen session or API key must not be a way round the sign-in back-off."""
    alice = await hub.signup("alice@example.com")
    thief = await hub.key_client(alice)
    for n in range(5):
        response = await thief.post(
            "/api/auth/password", {"current_password": f"guess {n}", "new_password": "x" * 12}
        )
        assert_error(response, 403, "invalid_credentials")
    response = await thief.post(
        "/api/auth/password", {"current_password": PASSWORD, "new_password": "x" * 12}
    )
    assert_error(response, 429, "login_throttled")


async def test_garbage_forwarded_for_does_not_break_sign_in(hub: Hub) -> None:
    await hub.signup("alice@example.com")
    response = await login(hub.client(), "alice@example.com", PASSWORD, "not-an-ip")
    assert response.status == 200, response.text


async def test_aws_mode_throttles_the_address_the_load_balancer_saw(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The load balancer appends the real client address; what the client sent comes first."""
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")  # as `llmhub serve` configures aws mode
    aws = settings.model_copy(
        update={
            "mode": "aws",
            "bedrock": settings.bedrock.model_copy(update={"endpoint_url": "http://127.0.0.1:9"}),
        }
    )
    async with running_hub(aws) as hub:
        for n in range(5):
            response = await login(
                hub.client(), f"nobody{n}@example.com", "whatever", f"10.0.0.{n}, 203.0.113.7"
            )
            assert response.status == 401
        response = await login(
            hub.client(), "other@example.com", "whatever", "10.9.9.9, 203.0.113.7"
        )
        assert_error(response, 429, "login_throttled")


async def test_throttle_with_redis_shared_by_two_replicas(
    settings: Settings, redis_url: str
) -> None:
    shared = settings.model_copy(update={"redis_url": redis_url})
    async with running_hub(shared) as one, running_hub(shared) as two:
        await one.signup("alice@example.com")
        for _ in range(3):  # successes do not count against the address
            assert (
                await login(two.client(), "alice@example.com", PASSWORD, "192.0.2.1")
            ).status == 200
        responses = await asyncio.gather(
            *(
                login(hub.client(), "alice@example.com", f"guess {n}", f"198.51.100.{n}")
                for n, hub in enumerate([one, two] * 6)
            )
        )
        statuses = [r.status for r in responses]
        assert statuses.count(401) <= 5 and statuses.count(429) >= 7, statuses
        refused = await login(two.client(), "alice@example.com", PASSWORD, "198.51.100.200")
        assert_error(refused, 429, "login_throttled")


async def test_counters_unreachable_is_503_not_500(settings: Settings) -> None:
    gone = settings.model_copy(update={"redis_url": "redis://127.0.0.1:9"})
    async with running_hub(gone) as hub:
        # Sign-up is limited per address too: no limit is ever silently skipped.
        response = await hub.client().post(
            "/api/auth/signup", {"email": "alice@example.com", "password": PASSWORD}
        )
        assert_error(response, 503)
        response = await login(hub.client(), "alice@example.com", PASSWORD, "192.0.2.1")
        assert_error(response, 503)


# -- races -----------------------------------------------------------------------------------------


async def test_closed_signup_admits_only_the_first_of_two_racing_signups(
    settings: Settings,
) -> None:
    closed = settings.model_copy(update={"signup_policy": "closed"})
    async with running_hub(closed) as hub:
        responses = await asyncio.gather(
            *(
                hub.client().post(
                    "/api/auth/signup", {"email": f"racer{n}@example.com", "password": PASSWORD}
                )
                for n in range(4)
            )
        )
        assert sorted(r.status for r in responses) == [201, 403, 403, 403]


async def test_a_disabled_admin_is_not_the_last_admin(hub: Hub) -> None:
    admin = await hub.signup("admin@example.com")
    other = await hub.signup("other@example.com")
    other_id = await user_id(other)
    assert (await admin.patch(f"/api/admin/users/{other_id}", {"role": "admin"})).status == 200
    assert (await admin.patch(f"/api/admin/users/{other_id}", {"disabled": True})).status == 200
    # Demoting or deleting the disabled admin loses no working admin.
    assert (await admin.patch(f"/api/admin/users/{other_id}", {"role": "user"})).status == 200
    assert (await admin.patch(f"/api/admin/users/{other_id}", {"role": "admin"})).status == 200
    assert (await admin.delete(f"/api/admin/users/{other_id}")).status == 200
    # The one working admin is still protected.
    response = await admin.patch(f"/api/admin/users/{await user_id(admin)}", {"role": "user"})
    assert_error(response, 409, "last_admin")


# -- body limit ------------------------------------------------------------------------------------


async def test_chunked_body_over_the_limit_is_413(hub: Hub) -> None:
    limit = hub.app.state.settings.max_body_bytes

    async def chunks() -> Any:
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    client = hub.client()
    async with client.session.post(
        hub.url + "/api/auth/login", data=chunks(), headers=JSON
    ) as response:
        assert response.status == 413
        assert (await response.json())["error"]["code"] == "payload_too_large"


# -- logs ------------------------------------------------------------------------------------------


def test_request_id_with_a_line_break_is_not_trusted() -> None:
    scope = {"headers": [(b"x-request-id", b"abc\n")]}
    assert observability._incoming_request_id(scope) is None
    assert observability._incoming_request_id({"headers": [(b"x-request-id", b"abc")]}) == "abc"


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        (
            "postgresql://llmhub:p@ss/word@db.internal:5432/llmhub",
            "postgresql://llmhub:[redacted]@db.internal:5432/llmhub",
        ),
        (
            "postgresql://llmhub:p@ssword@db.internal:5432/llmhub",
            "postgresql://llmhub:[redacted]@db.internal:5432/llmhub",
        ),
        (
            "postgresql://db.internal/llmhub?user=llmhub&password=hunter2",
            "postgresql://db.internal/llmhub?user=llmhub&password=[redacted]",
        ),
        ("authorization: bearer sk-abcdef123456", "authorization: [redacted]"),
        ("key lh_abcdefgh12345678 was used", "key [redacted] was used"),
    ],
)
def test_secrets_inside_text_are_redacted(text: str, redacted: str) -> None:
    # Exactly the secret goes: what a log reader needs (user, host, database) stays.
    assert observability.redact_text(text) == redacted


@pytest.mark.parametrize(
    "text",
    [
        "GET /api/chats 200 in 3 ms for alice@example.com",
        "postgresql://db.internal:5432/llmhub",
        "input_tokens=12 output_tokens=30 token_count=42",
    ],
)
def test_text_without_secrets_is_left_alone(text: str) -> None:
    assert observability.redact_text(text) == text


def test_secret_keys_are_redacted_whatever_their_spelling() -> None:
    event = {
        "headers": {
            "x-csrf-token": "t1",
            "set-cookie": "c1",
            "x-api-key": "k1",
            "X-Amz-Security-Token": "a1",
        },
        "csrfToken": "t2",
        "privateKey": "p1",
        "input_tokens": 5,
    }
    out = observability.redact_secrets(None, "info", event)
    flat = json.dumps(out)
    for secret in ("t1", "c1", "k1", "a1", "t2", "p1"):
        assert f'"{secret}"' not in flat, flat
    assert out["input_tokens"] == 5


@pytest.fixture(params=["json", "console"])
def captured_logs(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[io.StringIO]:
    """Logging configured as `serve --log-format json|console` would, writing into a buffer."""
    buffer = io.StringIO()
    names = ["", "uvicorn", "uvicorn.error", "uvicorn.access", "botocore", "aiobotocore"]
    names += ["aioboto3", "pgserver", "asyncio"]
    loggers = [logging.getLogger(name) for name in names]
    saved = [(lg.handlers[:], lg.level, lg.propagate, lg.disabled) for lg in loggers]
    structlog_config = structlog.get_config()
    monkeypatch.setattr(sys, "stderr", buffer)
    observability.configure_logging("info", json_logs=request.param == "json")
    monkeypatch.undo()
    try:
        yield buffer
    finally:
        structlog.configure(**structlog_config)
        for lg, (handlers, level, propagate, disabled) in zip(loggers, saved, strict=True):
            lg.handlers[:], lg.level, lg.propagate, lg.disabled = (
                handlers,
                level,
                propagate,
                disabled,
            )


def test_exception_text_is_redacted_too(captured_logs: io.StringIO) -> None:
    secret_url = "postgresql://llmhub:hunter2@db.internal/llmhub"
    key = "lh_" + "s" * 40
    try:
        raise RuntimeError(f"cannot reach {secret_url} with {key}")
    except RuntimeError:
        structlog.get_logger("t").exception("boom")
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    output = captured_logs.getvalue()
    assert output.count("RuntimeError") >= 2, output
    assert "hunter2" not in output and key not in output, output


def test_access_log_escapes_control_characters() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def run() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: Any) -> None:
            pass

        scope = {"type": "http", "method": "GET", "path": "/x\n\x1b[31mfake line", "headers": []}
        await observability.AccessLogMiddleware(app)(scope, receive, send)

    with structlog.testing.capture_logs() as logged:
        asyncio.run(run())
    path = logged[-1]["path"]
    assert "\n" not in path and "\x1b" not in path
    assert path.startswith("/x")
