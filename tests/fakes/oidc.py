"""A fake OpenID provider on a loopback aiohttp server, issuing real signed tokens.

Endpoints and wire formats follow OpenID Connect Core 1.0, Discovery 1.0, RP-Initiated Logout
1.0, RFC 6749 (errors as `{"error", "error_description"}`), RFC 7636 (PKCE S256) and RFC 7517:

    GET  {issuer}/.well-known/openid-configuration
    GET  /jwks                  the current signing keys (RSA, `kid`ed); `rotate_keys()` swaps
    GET  /authorize             signs in `fake.user` at once (an IdP with a live session) and
                                redirects back with `code` and `state`
    POST /token                 authorization_code grant; client_secret_basic or _post; codes
                                are single-use and bound to redirect_uri and the PKCE challenge
    GET  /userinfo              Bearer access token -> claims
    GET  /end-session           client_id + post_logout_redirect_uri -> 302 there

    async with FakeOidcProvider(client_id="llmhub", client_secret="s3cret") as idp:
        idp.client.redirect_uris.add(hub_url + "/api/auth/oidc/test/callback")
        idp.user = FakeUser("alice-1", "alice@example.com", groups=["staff"])

Knobs for the refusal tests: `next_id_token_claims` (claims overridden in the next ID token:
iss, aud, exp, nonce, ...), `next_id_token_forgery` ("alg-none" or "hs256-public-key"),
`claims_in_userinfo_only` (Cognito/Authentik-style: email, name and groups only from
userinfo). Requests are recorded in `token_requests` and `end_session_requests`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import urlencode

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ID_TOKEN_LIFETIME = 300


@dataclass
class FakeUser:
    sub: str
    email: str | None
    name: str = ""
    groups: list[str] | None = None
    email_verified: bool | str = True
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. {"hd": "example.com"}
    groups_overage: bool = False  # Entra: too many groups -> _claim_names instead of groups


@dataclass
class FakeClient:
    client_id: str
    client_secret: str | None
    redirect_uris: set[str] = field(default_factory=set)
    post_logout_redirect_uris: set[str] = field(default_factory=set)


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    nonce: str | None
    code_challenge: str
    scope: str
    user: FakeUser
    expires_at: float


class _SigningKey:
    def __init__(self) -> None:
        self.kid = secrets.token_hex(8)
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict[str, Any]:
        public = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**public, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class FakeOidcProvider:
    def __init__(
        self,
        *,
        client_id: str = "llmhub",
        client_secret: str | None = "fake-client-secret",
        issuer_path: str = "/realms/test",
        trailing_slash: bool = False,
        userinfo: bool = True,
        end_session: bool = True,
        tenant: str | None = None,
    ) -> None:
        """`tenant`: behave like Entra ID's multi-tenant endpoint (`/common/v2.0`): discovery
        names the issuer `{base}/{tenantid}/v2.0`, tokens carry `tid` and the real issuer."""
        self.client = FakeClient(client_id, client_secret)
        self.tenant = tenant
        self.issuer_path = issuer_path.rstrip("/") + ("/" if trailing_slash else "")
        self.offers_userinfo = userinfo
        self.offers_end_session = end_session
        self.user: FakeUser | None = None
        self.keys = [_SigningKey()]
        self.next_id_token_claims: dict[str, Any] = {}
        self.next_id_token_forgery: str | None = None
        self.claims_in_userinfo_only = False
        self.token_requests: list[dict[str, str]] = []
        self.authorize_requests: list[dict[str, str]] = []
        self.end_session_requests: list[dict[str, str]] = []
        self.jwks_requests = 0
        self._codes: dict[str, _Code] = {}
        self._access_tokens: dict[str, FakeUser] = {}
        self._runner: web.AppRunner | None = None
        self._port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def issuer(self) -> str:
        """The issuer to configure (and, except for a multi-tenant fake, the one published)."""
        return self.base_url + self.issuer_path

    @property
    def published_issuer(self) -> str:
        return f"{self.base_url}/{{tenantid}}/v2.0" if self.tenant else self.issuer

    @property
    def token_issuer(self) -> str:
        return f"{self.base_url}/{self.tenant}/v2.0" if self.tenant else self.issuer

    async def __aenter__(self) -> Self:
        app = web.Application()
        discovery = self.issuer_path.rstrip("/") + "/.well-known/openid-configuration"
        app.router.add_get(discovery, self._discovery)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/token", self._token)
        app.router.add_get("/userinfo", self._userinfo)
        app.router.add_get("/end-session", self._end_session)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- knobs -----------------------------------------------------------------------------------

    def rotate_keys(self) -> None:
        """A new signing key replaces the old one in the published key set."""
        self.keys = [_SigningKey()]

    def reset(self) -> None:
        self.user = None
        self.next_id_token_claims = {}
        self.next_id_token_forgery = None
        self.claims_in_userinfo_only = False
        self.token_requests.clear()
        self.authorize_requests.clear()
        self.end_session_requests.clear()

    def provider_settings(self, name: str = "test", **overrides: Any) -> dict[str, Any]:
        """An `[[oidc.providers]]` entry for this fake."""
        return {
            "name": name,
            "issuer": self.issuer,
            "client_id": self.client.client_id,
            **({"client_secret": self.client.client_secret} if self.client.client_secret else {}),
            **overrides,
        }

    # -- endpoints -------------------------------------------------------------------------------

    async def _discovery(self, request: web.Request) -> web.Response:
        document: dict[str, Any] = {
            "issuer": self.published_issuer,
            "authorization_endpoint": self.base_url + "/authorize",
            "token_endpoint": self.base_url + "/token",
            "jwks_uri": self.base_url + "/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile", "groups"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "grant_types_supported": ["authorization_code"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "email", "name"],
        }
        if self.offers_userinfo:
            document["userinfo_endpoint"] = self.base_url + "/userinfo"
        if self.offers_end_session:
            document["end_session_endpoint"] = self.base_url + "/end-session"
        return web.json_response(document)

    async def _jwks(self, request: web.Request) -> web.Response:
        self.jwks_requests += 1
        return web.json_response({"keys": [key.jwk() for key in self.keys]})

    async def _authorize(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.authorize_requests.append(query)
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != self.client.client_id or (
            redirect_uri not in self.client.redirect_uris
        ):
            # OIDC Core 3.1.2.6: never redirect to an unregistered redirect_uri.
            return web.Response(status=400, text="invalid client_id or redirect_uri")
        state = query.get("state")

        def back(**params: str) -> web.Response:
            if state is not None:
                params["state"] = state
            raise web.HTTPFound(f"{redirect_uri}?{urlencode(params)}")

        if query.get("response_type") != "code":
            return back(error="unsupported_response_type")
        if "openid" not in query.get("scope", "").split():
            return back(error="invalid_scope", error_description="openid is required")
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return back(error="invalid_request", error_description="PKCE S256 is required")
        if self.user is None:
            return back(error="access_denied", error_description="the user cancelled")
        code = secrets.token_urlsafe(24)
        self._codes[code] = _Code(
            client_id=self.client.client_id,
            redirect_uri=redirect_uri,
            nonce=query.get("nonce"),
            code_challenge=query["code_challenge"],
            scope=query["scope"],
            user=self.user,
            expires_at=time.time() + 60,
        )
        return back(code=code)

    async def _token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.token_requests.append({k: str(v) for k, v in form.items()})
        client_id, secret = self._client_credentials(request, form)
        if client_id != self.client.client_id or (
            self.client.client_secret is not None and secret != self.client.client_secret
        ):
            return _oauth_error("invalid_client", "client authentication failed", 401)
        if form.get("grant_type") != "authorization_code":
            return _oauth_error("unsupported_grant_type", "only authorization_code")
        # Single use: a code is gone once presented, whatever happens next (RFC 6749 4.1.2).
        code = self._codes.pop(str(form.get("code", "")), None)
        if code is None or code.expires_at < time.time():
            return _oauth_error("invalid_grant", "the code is invalid, expired or used")
        if form.get("redirect_uri") != code.redirect_uri:
            return _oauth_error("invalid_grant", "redirect_uri does not match")
        verifier = str(form.get("code_verifier", ""))
        challenge = _b64(hashlib.sha256(verifier.encode()).digest())
        if not hmac.compare_digest(challenge, code.code_challenge):
            return _oauth_error("invalid_grant", "PKCE verification failed")
        access_token = secrets.token_urlsafe(24)
        self._access_tokens[access_token] = code.user
        return web.json_response(
            {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": 3600,
                "scope": code.scope,
                "id_token": self._id_token(code),
            },
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    def _client_credentials(
        self, request: web.Request, form: Mapping[str, Any]
    ) -> tuple[str | None, str | None]:
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            from urllib.parse import unquote_plus

            decoded = base64.b64decode(header[6:]).decode()
            client_id, _, secret = decoded.partition(":")
            return unquote_plus(client_id), unquote_plus(secret)
        return form.get("client_id"), form.get("client_secret")

    async def _userinfo(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        user = self._access_tokens.get(header.removeprefix("Bearer "))
        if user is None:
            return web.Response(
                status=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )
        return web.json_response({"sub": user.sub, **self._profile(user)})

    async def _end_session(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.end_session_requests.append(query)
        target = query.get("post_logout_redirect_uri")
        known = target in self.client.post_logout_redirect_uris
        if target and known and query.get("client_id") == self.client.client_id:
            raise web.HTTPFound(target)
        return web.Response(text="You are signed out.", content_type="text/html")

    # -- tokens ----------------------------------------------------------------------------------

    def _profile(self, user: FakeUser) -> dict[str, Any]:
        claims: dict[str, Any] = {**user.extra}
        if user.email is not None:
            claims["email"] = user.email
            claims["email_verified"] = user.email_verified
        if user.name:
            claims["name"] = user.name
        if user.groups_overage:
            claims["_claim_names"] = {"groups": "src1"}
            claims["_claim_sources"] = {
                "src1": {"endpoint": "https://graph.windows.net/tenant/users/x/getMemberObjects"}
            }
        elif user.groups is not None:
            claims["groups"] = list(user.groups)
        return claims

    def _id_token(self, code: _Code) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.token_issuer,
            "sub": code.user.sub,
            "aud": code.client_id,
            "exp": now + ID_TOKEN_LIFETIME,
            "iat": now,
            "auth_time": now,
        }
        if code.nonce is not None:
            claims["nonce"] = code.nonce
        if self.tenant:
            claims["tid"] = self.tenant
        if not self.claims_in_userinfo_only:
            claims.update(self._profile(code.user))
        claims.update(self.next_id_token_claims)
        self.next_id_token_claims = {}
        forgery, self.next_id_token_forgery = self.next_id_token_forgery, None
        key = self.keys[0]
        if forgery == "alg-none":
            header = {"alg": "none", "typ": "JWT", "kid": key.kid}
            return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}."
        if forgery == "hs256-public-key":
            # The classic confusion attack: HMAC "signed" with the published public key.
            header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
            signing_input = (
                f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
            )
            mac = hmac.new(key.public_pem(), signing_input.encode(), hashlib.sha256).digest()
            return f"{signing_input}.{_b64(mac)}"
        if forgery == "unknown-key":
            stranger = _SigningKey()
            return jwt.encode(claims, stranger.private, algorithm="RS256", headers={"kid": key.kid})
        return jwt.encode(claims, key.private, algorithm="RS256", headers={"kid": key.kid})


def _oauth_error(error: str, description: str, status: int = 400) -> web.Response:
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="fake-idp"'
    return web.json_response(
        {"error": error, "error_description": description}, status=status, headers=headers
    )
