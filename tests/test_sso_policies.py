"""Who SSO lets in under each sign-up policy, password sign-in turned off, and provider quirks
(Entra's multi-tenant issuer, Authentik's trailing slash) through the fake provider."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from llmhub.config import ConfigError, load_settings
from tests.fakes.oidc import FakeOidcProvider, FakeUser
from tests.hub import Hub, hub_settings, running_hub
from tests.sso_support import me, register, sso_sign_in


@contextlib.asynccontextmanager
async def sso_hub(
    idp: FakeOidcProvider, database_url: str, data_dir: Path, **settings: Any
) -> AsyncIterator[Hub]:
    provider = settings.pop("provider", {})
    async with running_hub(
        hub_settings(
            database_url,
            data_dir,
            ollama={"url": "http://127.0.0.1:9"},
            oidc={"providers": [idp.provider_settings("test", **provider)]},
            **settings,
        )
    ) as hub:
        register(idp, hub)
        yield hub


@pytest.fixture
async def idp() -> AsyncIterator[FakeOidcProvider]:
    async with FakeOidcProvider() as fake:
        yield fake


async def test_approval_policy_creates_pending_accounts(
    idp: FakeOidcProvider, database_url: str, data_dir: Path
) -> None:
    async with sso_hub(idp, database_url, data_dir, signup_policy="approval") as hub:
        admin = await hub.signup("admin@example.com")
        await me(admin)
        idp.user = FakeUser("p-1", "waiting@example.com")
        assert (await sso_sign_in(hub.client())).error == "account_pending"
        users = {u["email"]: u for u in (await admin.get("/api/admin/users")).body["data"]}
        pending = users["waiting@example.com"]
        assert pending["role"] == "pending" and pending["sign_in"] == ["test"]
        # Once approved, the same identity signs in.
        assert (
            await admin.patch(f"/api/admin/users/{pending['id']}", {"role": "user"})
        ).status == 200
        client = hub.client()
        assert (await sso_sign_in(client)).error is None
        assert (await me(client))[1]["user"]["email"] == "waiting@example.com"  # type: ignore[index]


async def test_closed_policy_admits_only_accounts_made_beforehand(
    idp: FakeOidcProvider, database_url: str, data_dir: Path
) -> None:
    async with sso_hub(idp, database_url, data_dir, signup_policy="closed") as hub:
        admin = await hub.signup("admin@example.com")  # the very first account is allowed
        await me(admin)
        idp.user = FakeUser("c-1", "stranger@example.com")
        assert (await sso_sign_in(hub.client())).error == "signup_closed"
        # An admin pre-creates the account (as the CLI does); the verified email links it.
        from llmhub import accounts

        await accounts.create_user(hub.app.state.pool, "invited@example.com", "x" * 12)
        idp.user = FakeUser("c-2", "invited@example.com")
        client = hub.client()
        assert (await sso_sign_in(client)).error is None
        assert (await me(client))[1]["user"]["email"] == "invited@example.com"  # type: ignore[index]


async def test_disabled_accounts_are_refused(
    idp: FakeOidcProvider, database_url: str, data_dir: Path
) -> None:
    async with sso_hub(idp, database_url, data_dir) as hub:
        admin = await hub.signup("admin@example.com")
        await me(admin)
        idp.user = FakeUser("d-1", "dan@example.com")
        client = hub.client()
        assert (await sso_sign_in(client)).error is None
        user_id = (await me(client))[1]["user"]["id"]  # type: ignore[index]
        assert (await admin.patch(f"/api/admin/users/{user_id}", {"disabled": True})).status == 200
        assert (await sso_sign_in(hub.client())).error == "account_disabled"


async def test_groups_never_demote_the_last_admin(
    idp: FakeOidcProvider, database_url: str, data_dir: Path
) -> None:
    provider = {"admin_groups": ["admins"]}
    async with sso_hub(idp, database_url, data_dir, provider=provider) as hub:
        idp.user = FakeUser("a-1", "only-admin@example.com", groups=["admins"])
        assert (await sso_sign_in(hub.client())).error is None  # the first user: admin
        idp.user = FakeUser("a-1", "only-admin@example.com", groups=[])
        client = hub.client()
        assert (await sso_sign_in(client)).error is None
        assert (await me(client))[1]["user"]["role"] == "admin"  # type: ignore[index]


async def test_password_login_can_be_turned_off(
    idp: FakeOidcProvider, database_url: str, data_dir: Path
) -> None:
    async with sso_hub(idp, database_url, data_dir, auth={"password_login": False}) as hub:
        client = hub.client()
        for path in ("/api/auth/signup", "/api/auth/login"):
            response = await client.post(path, {"email": "x@example.com", "password": "p" * 12})
            assert (response.status, response.error_code) == (403, "password_login_disabled")
        assert (await client.get("/api/auth/providers")).body["password_login"] is False
        # SSO still works, and the first account made by SSO becomes admin.
        idp.user = FakeUser("s-1", "sso@example.com")
        assert (await sso_sign_in(client)).error is None
        assert (await me(client))[1]["user"]["role"] == "admin"  # type: ignore[index]


def test_password_login_off_needs_a_way_to_sign_in() -> None:
    with pytest.raises(ConfigError, match=r"^auth\.password_login: false needs"):
        load_settings(Path("/dev/null"), {"auth": {"password_login": False}})


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"issuer": "http://idp.example.com"}, "must be https://"),
        ({"scopes": ["email"]}, "scopes: must include openid"),
        ({"name": "Bad Name"}, "oidc.providers.name: String should match pattern"),
    ],
)
def test_bad_provider_settings_name_the_key(overrides: dict[str, Any], expected: str) -> None:
    provider = {"name": "x", "issuer": "https://idp.example.com", "client_id": "c", **overrides}
    with pytest.raises(ConfigError, match=expected):
        load_settings(Path("/dev/null"), {"oidc": {"providers": [provider]}})


async def test_entra_multi_tenant_issuer_is_filled_from_the_tenant(
    database_url: str, data_dir: Path
) -> None:
    tenant = "9188040d-6c67-4c5b-b112-36a304b66dad"
    async with (
        FakeOidcProvider(issuer_path="/common/v2.0", tenant=tenant) as idp,
        sso_hub(idp, database_url, data_dir) as hub,
    ):
        idp.user = FakeUser("e-1", "ella@contoso.example")
        assert (await sso_sign_in(hub.client())).error is None
        # A token claiming a tenant, but issued by another, is refused.
        idp.user = FakeUser("e-2", "eve@contoso.example")
        idp.next_id_token_claims = {"tid": "00000000-0000-0000-0000-000000000000"}
        assert (await sso_sign_in(hub.client())).error == "sso_invalid_token"


async def test_an_issuer_with_a_trailing_slash_matches_exactly(
    database_url: str, data_dir: Path
) -> None:
    """Authentik's issuers end in a slash; tokens must carry it exactly."""
    async with (
        FakeOidcProvider(issuer_path="/application/o/llmhub", trailing_slash=True) as idp,
        sso_hub(idp, database_url, data_dir) as hub,
    ):
        idp.user = FakeUser("t-1", "tess@example.com")
        assert (await sso_sign_in(hub.client())).error is None
        idp.next_id_token_claims = {"iss": idp.issuer.rstrip("/")}
        assert (await sso_sign_in(hub.client())).error == "sso_invalid_token"
