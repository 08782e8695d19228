"""The load balancer's signed identity: `x-amzn-oidc-data`, verified as AWS documents it.

After an `authenticate-cognito`/`authenticate-oidc` listener action, the ALB sends the user's
claims (from the IdP's userinfo endpoint) as a JWT signed with ECDSA P-256/SHA-256. Its header
carries `kid`, `signer` (the load balancer's ARN), `iss`, `client` and `exp`. The public key
is fetched as PEM from `{key_url}/{kid}` (by default the region's
`public-keys.auth.elb.<region>.amazonaws.com`) and cached per key id.

The quirk: ALB base64url-encodes the segments *with* `=` padding, which RFC 7515 forbids and
strict JOSE libraries refuse; the signature covers the padded text, so stripping it breaks the
signature. PyJWT (the library AWS's own example uses) decodes padded segments and verifies the
signing input as received, so the token is verified as it arrives, unaltered.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
import structlog
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from ..config import AlbSettings
from .claims import ExternalIdentity, SignInError, identity_from_claims

log = structlog.get_logger("llmhub.alb")

HEADER = "x-amzn-oidc-data"
CLOCK_SKEW_SECONDS = 60
_KID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_MAX_TOKEN_CHARS = 16_384  # ALB refuses claims over 11 KB; anything longer is not from it
_MISSING_KEY_RETRY_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class _Missing:
    until: float


class AlbVerifier:
    def __init__(self, settings: AlbSettings, http: aiohttp.ClientSession) -> None:
        self.settings = settings
        self._http = http
        self._keys: dict[str, ec.EllipticCurvePublicKey | _Missing] = {}
        self._fetching: dict[str, asyncio.Task[ec.EllipticCurvePublicKey | _Missing]] = {}

    async def verify(self, token: str) -> ExternalIdentity:
        """The identity in a header value, or `SignInError` saying why it is refused."""
        if len(token) > _MAX_TOKEN_CHARS:
            raise _invalid("the header is too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _invalid("the header is not a JWT") from None
        if header.get("alg") != "ES256":
            raise _invalid(f"algorithm {str(header.get('alg'))[:20]!r} is not ES256")
        # Check what the header claims before fetching anything on its behalf.
        if header.get("signer") != self.settings.arn:
            raise _invalid("signed by another load balancer")
        if header.get("client") != self.settings.client_id:
            raise _invalid("issued for another client")
        if header.get("iss") != self.settings.issuer:
            raise _invalid("issued by another identity provider")
        exp = header.get("exp")
        if not isinstance(exp, int | float) or exp + CLOCK_SKEW_SECONDS < time.time():
            raise _invalid("expired")
        kid = header.get("kid")
        if not isinstance(kid, str) or not _KID.match(kid):
            raise _invalid("the key id is not one the load balancer uses")
        key = await self._key(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=["ES256"],
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["sub"], "verify_aud": False, "verify_iss": False},
            )
        except jwt.PyJWTError as exc:
            raise _invalid(str(exc)) from None
        return identity_from_claims(
            claims, self.settings, provider="alb", issuer=self.settings.issuer
        )

    async def _key(self, kid: str) -> ec.EllipticCurvePublicKey:
        cached = self._keys.get(kid)
        if isinstance(cached, _Missing) and cached.until < time.monotonic():
            cached = None
        if cached is None:
            task = self._fetching.get(kid)
            if task is None:
                task = asyncio.ensure_future(self._fetch(kid))
                self._fetching[kid] = task
                task.add_done_callback(lambda _: self._fetching.pop(kid, None))
            cached = await asyncio.shield(task)
            if len(self._keys) > 1000:  # bounded even if someone sends many made-up key ids
                self._keys.clear()
            self._keys[kid] = cached
        if isinstance(cached, _Missing):
            raise _invalid("no public key is published for its key id")
        return cached

    async def _fetch(self, kid: str) -> ec.EllipticCurvePublicKey | _Missing:
        url = f"{self.settings.public_key_url.rstrip('/')}/{kid}"
        try:
            async with self._http.get(url) as response:
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("alb public key unreachable", kid=kid, error=str(exc)[:200])
            raise SignInError(
                "the load balancer's public key cannot be fetched", code="alb_keys_unavailable"
            ) from None
        if status != 200:
            return _Missing(time.monotonic() + _MISSING_KEY_RETRY_SECONDS)
        try:
            key = load_pem_public_key(text.encode())
        except ValueError:
            return _Missing(time.monotonic() + _MISSING_KEY_RETRY_SECONDS)
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            return _Missing(time.monotonic() + _MISSING_KEY_RETRY_SECONDS)
        return key


def _invalid(reason: str) -> SignInError:
    return SignInError(
        f"the load balancer's identity header is invalid: {reason}", code="invalid_alb_identity"
    )
