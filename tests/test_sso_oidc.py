"""OpenID Connect sign-in against the fake provider: the flow, accounts, roles and refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.fakes.oidc import FakeOidcProvider, FakeUser
from tests.hub import Hub, hub_settings, running_hub
from tests.sso_support import get_redirect, me, register, sso_sign_in

ADMIN_GROUP = "llmhub-admins"
STAFF_GROUP = "staff"


@pytest.fixture(scope="module")
async def idp() -> AsyncIterator[FakeOidcProvider]:
    async with FakeOidcProvider() as fake:
        yield fake


@pytest.fixture(scope="module")
async def hub(
    idp: FakeOidcProvider, module_database_url: str, module_data_dir: Path
) -> AsyncIterator[Hub]:
    """Open sign-up; roles from groups on the "groups" provider, not on "test"."""
    settings = hub_settings(
        module_database_url,
        module_data_dir,
        ollama={"url": "http://127.0.0.1:9"},
        oidc={
            "providers": [
                idp.provider_settings("test", display_name="Test IdP"),
                idp.provider_settings(
                    "groups", admin_groups=[ADMIN_GROUP], user_groups=[STAFF_GROUP]
                ),
                idp.provider_settings("corp", allowed_email_domains=["corp.example"]),
            ]
        },
    )
    async with running_hub(settings) as running:
        for name in ("test", "groups", "corp"):
            register(idp, running, name)
        # The first account becomes admin: make it here, so SSO users are ordinary ones.
        await running.signup("first-admin@example.com")
        yield running


@pytest.fixture(autouse=True)
def _fresh_idp(idp: FakeOidcProvider) -> None:
    idp.reset()


async def test_sign_in_creates_an_account_and_a_normal_session(
    hub: Hub, idp: FakeOidcProvider
) -> None:
    idp.user = FakeUser("alice-1", "alice@example.com", name="Alice Example")
    client = hub.client()
    result = await sso_sign_in(client, return_to="/c/some-chat")
    assert (result.status, result.location, result.error) == (302, "/c/some-chat", None)

    status, body = await me(client)
    assert status == 200
    assert body["user"]["email"] == "alice@example.com"  # type: ignore[index]
    assert body["user"]["display_name"] == "Alice Example"  # type: ignore[index]
    assert body["user"]["role"] == "user"  # type: ignore[index]
    # A normal session: the CSRF token it carries lets the browser write.
    assert (await client.post("/api/keys", {"name": "k"})).status == 201
    assert (await client.post("/api/keys", {"name": "k"}, csrf=False)).status == 403

    # The authorization request used PKCE S256, state and nonce.
    sent = idp.authorize_requests[-1]
    assert sent["code_challenge_method"] == "S256" and len(sent["code_challenge"]) == 43
    assert sent["state"] and sent["nonce"] and sent["scope"] == "openid email profile"
    assert idp.token_requests[-1]["code_verifier"]

    # Signing in again reaches the same account, by identity.
    again = hub.client()
    assert (await sso_sign_in(again)).error is None
    assert (await me(again))[1]["user"]["id"] == body["user"]["id"]  # type: ignore[index]


async def test_admins_see_how_each_user_signs_in(hub: Hub, idp: FakeOidcProvider) -> None:
    idp.user = FakeUser("bob-1", "bob@example.com")
    assert (await sso_sign_in(hub.client())).error is None
    admin = hub.client()
    await admin.post(
        "/api/auth/login", {"email": "first-admin@example.com", "password": "correct horse battery"}
    )
    users = {u["email"]: u for u in (await admin.get("/api/admin/users")).body["data"]}
    assert users["bob@example.com"]["sign_in"] == ["test"]
    assert users["first-admin@example.com"]["sign_in"] == ["password"]


async def test_unsafe_return_paths_land_on_the_home_page(hub: Hub, idp: FakeOidcProvider) -> None:
    idp.user = FakeUser("carol-1", "carol@example.com")
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        result = await sso_sign_in(hub.client(), return_to=target)
        assert (result.error, result.location) == (None, "/")


async def test_a_verified_email_links_an_existing_password_account(
    hub: Hub, idp: FakeOidcProvider
) -> None:
    password_user = await hub.signup("dora@example.com")
    user_id = (await me(password_user))[1]["user"]["id"]  # type: ignore[index]
    # Cognito's userinfo sends booleans as strings: "true" counts as verified.
    idp.user = FakeUser("dora-1", "Dora@Example.com", email_verified="true")
    client = hub.client()
    assert (await sso_sign_in(client)).error is None
    assert (await me(client))[1]["user"]["id"] == user_id  # type: ignore[index]


async def test_an_unverified_email_never_takes_over_an_account(
    hub: Hub, idp: FakeOidcProvider
) -> None:
    await hub.signup("erin@example.com")
    for unverified in (False, "false"):
        idp.user = FakeUser(f"erin-{unverified}", "erin@example.com", email_verified=unverified)
        client = hub.client()
        assert (await sso_sign_in(client)).error == "email_not_verified"
        assert (await me(client))[0] == 401


async def test_roles_follow_groups_at_every_sign_in(hub: Hub, idp: FakeOidcProvider) -> None:
    idp.user = FakeUser("gus-1", "gus@example.com", groups=[STAFF_GROUP])
    first = hub.client()
    assert (await sso_sign_in(first, "groups")).error is None
    assert (await me(first))[1]["user"]["role"] == "user"  # type: ignore[index]

    # Keycloak sends group paths: "/llmhub-admins" is the llmhub-admins group.
    idp.user = FakeUser("gus-1", "gus@example.com", groups=["/" + ADMIN_GROUP, STAFF_GROUP])
    second = hub.client()
    assert (await sso_sign_in(second, "groups")).error is None
    assert (await me(second))[1]["user"]["role"] == "admin"  # type: ignore[index]
    assert (await me(first))[0] == 401  # the role changed: older sessions ended

    # Out of every mapped group: pending, refused, and signed out everywhere.
    idp.user = FakeUser("gus-1", "gus@example.com", groups=["other"])
    third = hub.client()
    assert (await sso_sign_in(third, "groups")).error == "account_pending"
    assert (await me(second))[0] == 401
    assert (await me(third))[0] == 401


async def test_allowed_email_domains(hub: Hub, idp: FakeOidcProvider) -> None:
    idp.user = FakeUser("hal-1", "hal@elsewhere.example")
    assert (await sso_sign_in(hub.client(), "corp")).error == "email_domain_not_allowed"
    idp.user = FakeUser("hal-2", "hal@corp.example", email_verified=False)
    assert (await sso_sign_in(hub.client(), "corp")).error == "email_domain_not_allowed"
    idp.user = FakeUser("hal-3", "hal@corp.example")
    assert (await sso_sign_in(hub.client(), "corp")).error is None


async def test_claims_only_in_userinfo_are_read_from_it(hub: Hub, idp: FakeOidcProvider) -> None:
    idp.claims_in_userinfo_only = True
    idp.user = FakeUser("ivy-1", "ivy@example.com", name="Ivy")
    client = hub.client()
    assert (await sso_sign_in(client)).error is None
    assert (await me(client))[1]["user"]["display_name"] == "Ivy"  # type: ignore[index]


async def test_rotated_keys_are_fetched_again(hub: Hub, idp: FakeOidcProvider) -> None:
    idp.user = FakeUser("jay-1", "jay@example.com")
    assert (await sso_sign_in(hub.client())).error is None
    fetched = idp.jwks_requests
    idp.rotate_keys()
    assert (await sso_sign_in(hub.client())).error is None
    assert idp.jwks_requests == fetched + 1
    assert (await sso_sign_in(hub.client())).error is None
    assert idp.jwks_requests == fetched + 1  # cached until the next unknown key id


@pytest.mark.parametrize(
    ("tweak", "forgery"),
    [
        pytest.param({"iss": "http://127.0.0.1:1/realms/other"}, None, id="wrong-issuer"),
        pytest.param({"aud": "another-client"}, None, id="wrong-audience"),
        pytest.param({"aud": ["llmhub", "another"], "azp": "another"}, None, id="wrong-azp"),
        pytest.param({"exp": 1_600_000_000, "iat": 1_599_999_000}, None, id="expired"),
        pytest.param({"nonce": "not-the-nonce-we-sent"}, None, id="bad-nonce"),
        pytest.param({}, "alg-none", id="alg-none"),
        pytest.param({}, "hs256-public-key", id="hs256-signed-with-the-public-key"),
        pytest.param({}, "unknown-key", id="signed-by-another-key"),
    ],
)
async def test_bad_id_tokens_are_refused(
    hub: Hub, idp: FakeOidcProvider, tweak: dict[str, Any], forgery: str | None
) -> None:
    idp.user = FakeUser("kim-1", "kim@example.com")
    idp.next_id_token_claims = tweak
    idp.next_id_token_forgery = forgery
    client = hub.client()
    result = await sso_sign_in(client)
    assert result.error == "sso_invalid_token"
    assert (await me(client))[0] == 401


async def test_a_replayed_code_is_refused(hub: Hub, idp: FakeOidcProvider) -> None:
    idp.user = FakeUser("lee-1", "lee@example.com")
    client = hub.client()
    first = await sso_sign_in(client)
    assert first.error is None and first.callback_url is not None
    # The same callback again: its state cookie is spent.
    _, location = await get_redirect(hub.client(), first.callback_url)
    assert "sso_error=sso_state_mismatch" in location
    # With a fresh login in flight, the old code still does not work: the provider refuses it.
    attacker = hub.client()
    _, authorize = await get_redirect(attacker, hub.url + "/api/auth/oidc/test/login")
    state = parse_qs(urlsplit(authorize).query)["state"][0]
    old_code = parse_qs(urlsplit(first.callback_url).query)["code"][0]
    _, location = await get_redirect(
        attacker, f"{hub.url}/api/auth/oidc/test/callback?code={old_code}&state={state}"
    )
    assert "sso_error=sso_code_rejected" in location
    assert (await me(attacker))[0] == 401


async def test_a_callback_from_another_browser_is_refused(hub: Hub, idp: FakeOidcProvider) -> None:
    """Login CSRF: a callback URL made in one browser does not sign in another."""
    idp.user = FakeUser("mo-1", "mo@example.com")
    starter = hub.client()
    _, authorize = await get_redirect(starter, hub.url + "/api/auth/oidc/test/login")
    _, callback = await get_redirect(starter, authorize)
    victim = hub.client()
    _, location = await get_redirect(victim, callback)
    assert "sso_error=sso_state_mismatch" in location
    assert (await me(victim))[0] == 401


async def test_the_provider_saying_no_is_shown(hub: Hub, idp: FakeOidcProvider) -> None:
    idp.user = None  # the user cancels at the provider
    assert (await sso_sign_in(hub.client())).error == "sso_denied"


async def test_entra_group_overage_is_refused_not_guessed(hub: Hub, idp: FakeOidcProvider) -> None:
    idp.user = FakeUser("ned-1", "ned@example.com", groups_overage=True)
    assert (await sso_sign_in(hub.client(), "groups")).error == "sso_groups_overage"


async def test_sign_out_goes_to_the_providers_end_session_endpoint(
    hub: Hub, idp: FakeOidcProvider
) -> None:
    idp.user = FakeUser("oz-1", "oz@example.com")
    client = hub.client()
    assert (await sso_sign_in(client)).error is None
    await me(client)  # the app reads its CSRF token from here
    response = await client.post("/api/auth/logout")
    assert response.status == 200
    redirect = urlsplit(response.body["redirect"])
    assert f"{redirect.scheme}://{redirect.netloc}{redirect.path}" == idp.base_url + "/end-session"
    assert parse_qs(redirect.query) == {
        "client_id": [idp.client.client_id],
        "post_logout_redirect_uri": [hub.url + "/signin"],
    }
    assert (await me(client))[0] == 401
    status, location = await get_redirect(client, response.body["redirect"])
    assert (status, location) == (302, hub.url + "/signin")


async def test_password_sign_out_has_no_provider_redirect(hub: Hub) -> None:
    client = await hub.signup("pat@example.com")
    response = await client.post("/api/auth/logout")
    assert response.status == 200 and response.body["redirect"] is None


async def test_the_sign_in_screen_lists_the_providers(hub: Hub) -> None:
    body = (await hub.client().get("/api/auth/providers")).body
    assert body["password_login"] is True and body["alb"] is False
    assert [(p["name"], p["label"], p["login_url"]) for p in body["providers"]] == [
        ("test", "Test IdP", "/api/auth/oidc/test/login"),
        ("groups", "groups", "/api/auth/oidc/groups/login"),
        ("corp", "corp", "/api/auth/oidc/corp/login"),
    ]
    assert (await hub.client().get("/api/auth/oidc/nope/login")).status == 404
