"""Walking a browser-like client through an OpenID sign-in, redirect by redirect."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from tests.fakes.oidc import FakeOidcProvider
from tests.hub import Client, Hub


@dataclass
class SignInResult:
    status: int
    location: str
    callback_url: str | None  # the provider's redirect back to llmhub, to replay it

    @property
    def error(self) -> str | None:
        """The `sso_error` llmhub redirected with, or None when it signed the user in."""
        values = parse_qs(urlsplit(self.location).query).get("sso_error")
        return values[0] if values else None


def callback_path(provider: str = "test") -> str:
    return f"/api/auth/oidc/{provider}/callback"


def register(idp: FakeOidcProvider, hub: Hub, provider: str = "test") -> None:
    idp.client.redirect_uris.add(hub.url + callback_path(provider))
    idp.client.post_logout_redirect_uris.add(hub.url + "/signin")


async def get_redirect(client: Client, url: str) -> tuple[int, str]:
    async with client.session.get(url, allow_redirects=False) as response:
        await response.read()
        return response.status, response.headers.get("Location", "")


async def sso_sign_in(
    client: Client, provider: str = "test", return_to: str | None = None
) -> SignInResult:
    """Login link -> provider's authorize -> llmhub's callback, following no redirect
    blindly: each hop is checked to go where it should."""
    query = f"?return_to={return_to}" if return_to is not None else ""
    status, authorize = await get_redirect(
        client, f"{client.base_url}/api/auth/oidc/{provider}/login{query}"
    )
    assert status == 302, (status, authorize)
    if authorize.startswith("/signin"):
        return SignInResult(status, authorize, None)
    status, callback = await get_redirect(client, authorize)
    assert status == 302 and callback.startswith(client.base_url + callback_path(provider)), (
        status,
        callback,
    )
    status, location = await get_redirect(client, callback)
    return SignInResult(status, location, callback)


async def me(client: Client) -> tuple[int, dict[str, object]]:
    response = await client.get("/api/auth/me")
    return response.status, response.body if isinstance(response.body, dict) else {}
