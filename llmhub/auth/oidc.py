"""OpenID Connect sign-in: authorization code flow with PKCE, state and nonce.

One `OidcProvider` per `[[oidc.providers]]` entry. Its endpoints come from the issuer's
discovery document (cached), its keys from `jwks_uri` (cached, re-read when a token names a
key id we do not hold: that is how providers rotate keys). ID tokens are verified by PyJWT:
signature with an asymmetric algorithm the provider announces (never `none`, never HMAC, so a
token "signed" with the public key as an HMAC secret is refused), `iss`, `aud`, `exp`, `iat`,
then `nonce` and `azp` as OpenID Connect Core 3.1.3.7 asks.

Provider quirks handled here (more in docs/design-notes.md):
- Google issues tokens with `iss` "accounts.google.com" as well as "https://accounts.google.com".
- Entra ID's multi-tenant discovery (`/common`, `/organizations`) names the issuer with a
  literal "{tenantid}"; the token's `tid` fills it in. A tenant given by domain name is
  reported under its GUID, so the discovered issuer is used, not the configured one.
- Entra ID replaces `groups` with `_claim_names`/`_claim_sources` past 200 groups (overage):
  the sign-in is refused with a clear code instead of guessing the user has no groups.
- Cognito's discovery has no end_session_endpoint; its /logout takes `client_id` and
  `logout_uri`, configured as `logout_url`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlencode, urlsplit

import aiohttp
import jwt
import structlog

from ..config import OidcProviderSettings
from .claims import GOOGLE_ISSUERS, ExternalIdentity, SignInError, identity_from_claims

log = structlog.get_logger("llmhub.oidc")

# Asymmetric algorithms only: a provider's public key must never verify an HMAC.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
CLOCK_SKEW_SECONDS = 60
DISCOVERY_TTL_SECONDS = 3600.0
_ENTRA_HOSTS = (
    "login.microsoftonline.com",
    "login.microsoftonline.us",
    "login.partner.microsoftonline.cn",
)


@dataclass(frozen=True, slots=True)
class Discovery:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    end_session_endpoint: str | None
    algorithms: frozenset[str]
    token_auth_methods: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """What the browser carries (signed) between the redirect out and the callback."""

    state: str
    nonce: str
    code_verifier: str

    @classmethod
    def new(cls) -> PendingLogin:
        return cls(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            code_verifier=secrets.token_urlsafe(64),  # 86 characters, within RFC 7636's 43-128
        )

    @property
    def code_challenge(self) -> str:
        digest = hashlib.sha256(self.code_verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class OidcProvider:
    def __init__(self, settings: OidcProviderSettings, http: aiohttp.ClientSession) -> None:
        self.settings = settings
        self.name = settings.name
        self._http = http
        self._discovery: tuple[float, Discovery] | None = None
        self._keys: jwt.PyJWKSet | None = None
        self._lock = asyncio.Lock()

    # -- the flow --------------------------------------------------------------------------------

    async def authorization_url(self, redirect_uri: str, login: PendingLogin) -> str:
        discovery = await self.discovery()
        params = {
            **self.settings.authorize_params,
            "response_type": "code",
            "client_id": self.settings.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(self.settings.scopes),
            "state": login.state,
            "nonce": login.nonce,
            "code_challenge": login.code_challenge,
            "code_challenge_method": "S256",
        }
        domains = self.settings.allowed_email_domains
        if discovery.issuer in GOOGLE_ISSUERS and len(domains) == 1:
            params.setdefault("hd", domains[0])  # Google: offer only that Workspace's accounts
        return _with_query(discovery.authorization_endpoint, params)

    async def finish(self, code: str, redirect_uri: str, login: PendingLogin) -> ExternalIdentity:
        """Exchange the code, verify the ID token, and read who signed in."""
        discovery = await self.discovery()
        tokens = await self._exchange(discovery, code, redirect_uri, login.code_verifier)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise SignInError("the provider returned no ID token", code="sso_invalid_token")
        claims = await self.verify_id_token(id_token, login.nonce)
        if "_claim_names" in claims and self.settings.groups_claim in claims["_claim_names"]:
            raise SignInError(
                "the provider left your groups out of the token (too many groups); ask an "
                "admin to send only the groups assigned to this application",
                code="sso_groups_overage",
            )
        access_token = tokens.get("access_token")
        if discovery.userinfo_endpoint and isinstance(access_token, str) and self._lacks(claims):
            userinfo = await self._userinfo(discovery.userinfo_endpoint, access_token)
            if userinfo.get("sub") != claims["sub"]:  # OIDC Core 5.3.2
                raise SignInError(
                    "userinfo is about another subject than the ID token", code="sso_invalid_token"
                )
            claims = {**userinfo, **claims}
        return identity_from_claims(
            claims, self.settings, provider=self.name, issuer=str(claims["iss"])
        )

    async def end_session_url(self, post_logout_redirect_uri: str) -> str | None:
        """Where the browser goes after llmhub's session ended (None: nowhere else)."""
        if self.settings.logout_url is not None:
            url = self.settings.logout_url
            if _is_cognito(self.settings.issuer):
                params = {
                    "client_id": self.settings.client_id,
                    "logout_uri": post_logout_redirect_uri,
                }
            else:
                params = self._logout_params(post_logout_redirect_uri)
            return _with_query(url, params)
        try:
            discovery = await self.discovery()
        except SignInError:
            return None
        if discovery.end_session_endpoint is None:
            return None
        return _with_query(
            discovery.end_session_endpoint, self._logout_params(post_logout_redirect_uri)
        )

    def _logout_params(self, post_logout_redirect_uri: str) -> dict[str, str]:
        # RP-Initiated Logout 1.0: client_id identifies us when no id_token_hint is sent.
        return {
            "client_id": self.settings.client_id,
            "post_logout_redirect_uri": post_logout_redirect_uri,
        }

    # -- discovery and keys ----------------------------------------------------------------------

    async def discovery(self) -> Discovery:
        cached = self._discovery
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        async with self._lock:
            cached = self._discovery
            if cached is not None and cached[0] > time.monotonic():
                return cached[1]
            document = await self._get_json(
                self.settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
            )
            discovery = self._parse_discovery(document)
            self._discovery = (time.monotonic() + DISCOVERY_TTL_SECONDS, discovery)
            return discovery

    def _parse_discovery(self, document: Mapping[str, Any]) -> Discovery:
        required = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
        if not all(isinstance(document.get(k), str) for k in required):
            raise SignInError(
                f"provider {self.name}: discovery document lacks {', '.join(required)}",
                code="sso_provider_unavailable",
            )
        issuer = document["issuer"]
        configured = self.settings.issuer
        # Discovery 4.3: the issuer must be the one asked for. Entra reports a tenant given by
        # domain name under its GUID, so for Entra the discovered one stands.
        same = issuer.rstrip("/") == configured.rstrip("/")
        if not same and not _is_entra(configured) and "{tenantid}" not in issuer:
            raise SignInError(
                f"provider {self.name}: discovery names issuer {issuer}, not {configured}",
                code="sso_provider_unavailable",
            )
        announced = document.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = frozenset(a for a in announced if a in ASYMMETRIC_ALGORITHMS)
        methods = document.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        return Discovery(
            issuer=issuer,
            authorization_endpoint=document["authorization_endpoint"],
            token_endpoint=document["token_endpoint"],
            jwks_uri=document["jwks_uri"],
            userinfo_endpoint=_optional_str(document.get("userinfo_endpoint")),
            end_session_endpoint=_optional_str(document.get("end_session_endpoint")),
            algorithms=algorithms or frozenset({"RS256"}),
            token_auth_methods=tuple(m for m in methods if isinstance(m, str)),
        )

    async def _key(self, discovery: Discovery, kid: str | None) -> jwt.PyJWK:
        keys = self._keys
        if keys is None or not _has_key(keys, kid):
            # Unknown key id: the provider rotated its keys. Tokens reach us only from its token
            # endpoint, so a re-read per unknown id cannot be driven by a stranger.
            keys = self._keys = _key_set(await self._get_json(discovery.jwks_uri))
        for key in keys.keys:
            if kid is None or key.key_id == kid:
                return key
        raise SignInError(
            "the token is signed with a key the provider does not publish", code="sso_invalid_token"
        )

    # -- tokens ----------------------------------------------------------------------------------

    async def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        discovery = await self.discovery()
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError:
            raise SignInError("the ID token is malformed", code="sso_invalid_token") from None
        algorithm = header.get("alg")
        if algorithm not in discovery.algorithms:
            raise SignInError(
                f"the ID token's algorithm {str(algorithm)[:20]!r} is not accepted",
                code="sso_invalid_token",
            )
        key = await self._key(discovery, header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key=key,
                algorithms=[algorithm],
                audience=self.settings.client_id,
                issuer=self._issuers(discovery, id_token),
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["iss", "sub", "aud", "exp", "iat"]},
            )
        except jwt.PyJWTError as exc:
            raise SignInError(
                f"the ID token is not valid: {exc}", code="sso_invalid_token"
            ) from None
        if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
            raise SignInError("the ID token's nonce does not match", code="sso_invalid_token")
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        azp = claims.get("azp")
        if (azp is not None and azp != self.settings.client_id) or (
            len(audiences) > 1 and azp is None
        ):
            raise SignInError("the ID token was issued to another party", code="sso_invalid_token")
        return claims

    def _issuers(self, discovery: Discovery, id_token: str) -> list[str]:
        issuer = discovery.issuer
        if issuer in GOOGLE_ISSUERS:
            return list(GOOGLE_ISSUERS)
        if "{tenantid}" in issuer:
            # Entra multi-tenant: which tenant it claims only fills in the expected issuer;
            # the signature and the full `iss` are still checked against it.
            try:
                unverified = jwt.decode(id_token, options={"verify_signature": False})
            except jwt.PyJWTError:
                raise SignInError("the ID token is malformed", code="sso_invalid_token") from None
            tenant = unverified.get("tid")
            if not isinstance(tenant, str) or not tenant:
                raise SignInError("the ID token names no tenant", code="sso_invalid_token")
            return [issuer.replace("{tenantid}", tenant)]
        return [issuer]

    async def _exchange(
        self, discovery: Discovery, code: str, redirect_uri: str, code_verifier: str
    ) -> dict[str, Any]:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        }
        headers = {"Accept": "application/json"}
        secret = self.settings.client_secret
        if secret is None:
            form["client_id"] = self.settings.client_id  # a public client: PKCE alone
        elif "client_secret_basic" in discovery.token_auth_methods:
            # RFC 6749 2.3.1: id and secret are form-encoded, then joined for HTTP Basic.
            pair = f"{quote_plus(self.settings.client_id)}:{quote_plus(secret.get_secret_value())}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form["client_id"] = self.settings.client_id
            form["client_secret"] = secret.get_secret_value()
        try:
            async with self._http.post(
                discovery.token_endpoint,
                data=form,
                headers=headers,
            ) as response:
                body = await _json_or_none(response)
                if response.status != 200 or not isinstance(body, dict):
                    error = body.get("error") if isinstance(body, dict) else None
                    log.warning(
                        "oidc token request refused",
                        provider=self.name,
                        status=response.status,
                        error=str(error)[:100],
                    )
                    raise SignInError(
                        "the provider refused the sign-in code (used already or expired)",
                        code="sso_code_rejected",
                    )
                return body
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _unavailable(self.name, exc) from None

    async def _userinfo(self, url: str, access_token: str) -> dict[str, Any]:
        try:
            async with self._http.get(
                url, headers={"Authorization": f"Bearer {access_token}"}
            ) as response:
                body = await _json_or_none(response)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _unavailable(self.name, exc) from None
        if response.status != 200 or not isinstance(body, dict):
            raise SignInError(
                "the provider's userinfo endpoint refused", code="sso_provider_unavailable"
            )
        return body

    def _lacks(self, claims: Mapping[str, Any]) -> bool:
        """Whether the ID token leaves out a claim we read (Cognito and Authentik put some
        claims only in userinfo, depending on scopes and mappings)."""
        from .claims import claim

        wanted = [self.settings.email_claim, self.settings.name_claim]
        if self.settings.roles_from_groups:
            wanted.append(self.settings.groups_claim)
        return any(claim(claims, name) is None for name in wanted)

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with self._http.get(url, headers={"Accept": "application/json"}) as response:
                body = await _json_or_none(response)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _unavailable(self.name, exc) from None
        if response.status != 200 or not isinstance(body, dict):
            raise SignInError(
                f"provider {self.name}: {url} answered {response.status}",
                code="sso_provider_unavailable",
            )
        return body


def _with_query(url: str, params: Mapping[str, str]) -> str:
    separator = "&" if urlsplit(url).query else "?"
    return url + separator + urlencode(params)


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _has_key(keys: jwt.PyJWKSet, kid: str | None) -> bool:
    return any(kid is None or key.key_id == kid for key in keys.keys)


def _key_set(document: Mapping[str, Any]) -> jwt.PyJWKSet:
    # Keys we cannot use (encryption keys, unknown types) are skipped, not fatal.
    usable = [
        k
        for k in document.get("keys", [])
        if isinstance(k, dict)
        and k.get("use", "sig") == "sig"
        and k.get("kty") in ("RSA", "EC", "OKP")
    ]
    try:
        return jwt.PyJWKSet(usable)
    except jwt.PyJWTError:
        raise SignInError(
            "the provider publishes no usable signing key", code="sso_provider_unavailable"
        ) from None


async def _json_or_none(response: aiohttp.ClientResponse) -> Any:
    try:
        return await response.json(content_type=None)
    except ValueError:
        return None


def _unavailable(name: str, exc: BaseException) -> SignInError:
    log.warning(
        "oidc provider unreachable", provider=name, error=str(exc)[:200] or type(exc).__name__
    )
    return SignInError(f"provider {name} cannot be reached", code="sso_provider_unavailable")


def _is_entra(issuer: str) -> bool:
    return (urlsplit(issuer).hostname or "") in _ENTRA_HOSTS


def _is_cognito(issuer: str) -> bool:
    host = urlsplit(issuer).hostname or ""
    return host.startswith("cognito-idp.") and host.endswith(".amazonaws.com")
