"""The load balancer's `x-amzn-oidc-data` header against a fake regional key endpoint."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import structlog
from cryptography.hazmat.primitives.asymmetric import ec

from llmhub.auth.alb import HEADER
from llmhub.config import load_settings
from tests.fakes.alb import ARN, CLIENT_ID, ISSUER, FakeAlbKeys
from tests.hub import Hub, hub_settings, running_hub
from tests.sso_support import me

LOGOUT_URL = (
    "https://llmhub-example.auth.us-east-1.amazoncognito.com/logout"
    f"?client_id={CLIENT_ID}&logout_uri=https%3A%2F%2Fllmhub.example.com%2F"
)


@pytest.fixture(scope="module")
async def keys() -> AsyncIterator[FakeAlbKeys]:
    async with FakeAlbKeys() as fake:
        yield fake


@pytest.fixture(scope="module")
async def hub(
    keys: FakeAlbKeys, module_database_url: str, module_data_dir: Path
) -> AsyncIterator[Hub]:
    settings = hub_settings(
        module_database_url,
        module_data_dir,
        ollama={"url": "http://127.0.0.1:9"},
        auth={
            "alb": {
                "arn": ARN,
                "client_id": CLIENT_ID,
                "issuer": ISSUER,
                "key_url": keys.url,
                "logout_url": LOGOUT_URL,
                "groups_claim": "cognito:groups",
                "admin_groups": ["admins"],
            }
        },
    )
    async with running_hub(settings) as running:
        await running.signup("first-admin@example.com")
        yield running


def claims(sub: str, email: str, **extra: object) -> dict[str, object]:
    # What Cognito's userinfo sends: email_verified as a string.
    return {"sub": sub, "email": email, "email_verified": "true", "username": sub, **extra}


async def test_a_valid_header_signs_in_without_a_form(hub: Hub, keys: FakeAlbKeys) -> None:
    header = keys.sign(claims("u-alice", "alice@example.com"))
    assert "=" in header  # ALB pads its base64url segments; they must verify as sent
    client = hub.client(default_headers={HEADER: header})
    status, body = await me(client)
    assert status == 200 and body["user"]["email"] == "alice@example.com"  # type: ignore[index]
    assert client.cookie("llmhub_session")  # a normal llmhub session was started
    # It behaves as any session: CSRF-checked writes, and it outlives the header.
    assert (await client.post("/api/keys", {"name": "k"})).status == 201
    client.default_headers.clear()
    assert (await me(client))[0] == 200


async def test_public_keys_are_fetched_once_per_key_id(hub: Hub, keys: FakeAlbKeys) -> None:
    for n in range(3):
        header = keys.sign(claims(f"u-cache-{n}", f"cache{n}@example.com"))
        assert (await me(hub.client(default_headers={HEADER: header})))[0] == 200
    assert keys.requests.count(keys.kid) == 1


def _tampered(header: str) -> str:
    head, payload, signature = header.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload))
    data["email"] = "mallory@example.com"
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).decode()
    return f"{head}.{forged}.{signature}"


def _stripped_padding(header: str) -> str:
    return header.replace("=", "")


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(
            lambda k: k.sign(claims("u-x", "x@example.com"), expires_in=-600), id="expired"
        ),
        pytest.param(
            lambda k: k.sign(claims("u-x", "x@example.com"), signer=ARN.replace("llmhub", "other")),
            id="wrong-signer",
        ),
        pytest.param(
            lambda k: k.sign(claims("u-x", "x@example.com"), client="other"), id="wrong-client"
        ),
        pytest.param(
            lambda k: k.sign(claims("u-x", "x@example.com"), issuer="https://evil.example"),
            id="wrong-issuer",
        ),
        pytest.param(
            lambda k: k.sign(
                claims("u-x", "x@example.com"),
                kid="4f3c2b1a-0000-4000-8000-000000000000",
                signing_key=ec.generate_private_key(ec.SECP256R1()),
            ),
            id="unknown-kid",
        ),
        pytest.param(
            lambda k: k.sign(
                claims("u-x", "x@example.com"), signing_key=ec.generate_private_key(ec.SECP256R1())
            ),
            id="signed-by-another-key",
        ),
        pytest.param(lambda k: _tampered(k.sign(claims("u-x", "x@example.com"))), id="tampered"),
        pytest.param(
            lambda k: _stripped_padding(k.sign(claims("u-x", "x@example.com"))),
            id="re-encoded-without-padding",
        ),
        pytest.param(lambda k: "not-a-jwt", id="garbage"),
    ],
)
async def test_invalid_headers_are_401_and_logged(
    hub: Hub, keys: FakeAlbKeys, make: object
) -> None:
    header = make(keys)  # type: ignore[operator]
    client = hub.client(default_headers={HEADER: header})
    with structlog.testing.capture_logs() as logs:
        response = await client.get("/api/auth/me")
    assert (response.status, response.error_code) == (401, "invalid_alb_identity")
    assert client.cookie("llmhub_session") is None
    refused = [e for e in logs if e["event"] == "alb identity refused"]
    assert refused and refused[0]["log_level"] == "warning"
    assert header not in json.dumps(refused, default=str)  # the token itself is never logged


async def test_a_header_from_an_unused_algorithm_is_refused(hub: Hub, keys: FakeAlbKeys) -> None:
    head, payload, _ = keys.sign(claims("u-y", "y@example.com")).split(".")
    header = json.loads(base64.urlsafe_b64decode(head))
    header["alg"] = "none"
    forged = base64.urlsafe_b64encode(json.dumps(header).encode()).decode()
    response = await hub.client(default_headers={HEADER: f"{forged}.{payload}."}).get(
        "/api/auth/me"
    )
    assert (response.status, response.error_code) == (401, "invalid_alb_identity")


async def test_groups_in_the_header_give_roles(hub: Hub, keys: FakeAlbKeys) -> None:
    header = keys.sign(claims("u-boss", "boss@example.com", **{"cognito:groups": ["admins"]}))
    client = hub.client(default_headers={HEADER: header})
    assert (await me(client))[1]["user"]["role"] == "admin"  # type: ignore[index]


async def test_sign_out_expires_the_load_balancer_cookies(hub: Hub, keys: FakeAlbKeys) -> None:
    header = keys.sign(claims("u-carl", "carl@example.com"))
    client = hub.client(default_headers={HEADER: header})
    client.set_cookie("AWSELBAuthSessionCookie-0", "shard0")
    client.set_cookie("AWSELBAuthSessionCookie-1", "shard1")
    await me(client)
    async with client.session.post(
        hub.url + "/api/auth/logout",
        headers={HEADER: header, "X-CSRF-Token": client.csrf_token or ""},
    ) as response:
        assert response.status == 200
        body = await response.json()
        set_cookies = response.headers.getall("Set-Cookie")
    assert body["redirect"] == LOGOUT_URL
    for shard in ("AWSELBAuthSessionCookie-0", "AWSELBAuthSessionCookie-1"):
        expired = [c for c in set_cookies if c.startswith(f"{shard}=")]
        assert expired, set_cookies
        assert "Max-Age=-1" in expired[0] and "expires=Thu, 01 Jan 1970" in expired[0]
    assert any(c.startswith("llmhub_session=") and "Max-Age=0" in c for c in set_cookies)


async def test_api_keys_work_without_the_header(hub: Hub, keys: FakeAlbKeys) -> None:
    owner = hub.client(default_headers={HEADER: keys.sign(claims("u-dev", "dev@example.com"))})
    await me(owner)
    script = await hub.key_client(owner)
    assert (await script.get("/v1/models")).status == 200
    assert (await script.get("/api/chats")).status == 200


def test_the_key_endpoint_defaults_to_the_load_balancers_region() -> None:
    settings = load_settings(
        Path("/dev/null"),
        {
            "auth": {
                "alb": {
                    "arn": ARN.replace("us-east-1", "eu-west-1"),
                    "client_id": "c",
                    "issuer": ISSUER,
                }
            }
        },
    )
    assert settings.auth.alb is not None
    assert (
        settings.auth.alb.public_key_url == "https://public-keys.auth.elb.eu-west-1.amazonaws.com"
    )
