"""A fake of the load balancer's regional public-key endpoint, and the header it signs.

AWS (Elastic Load Balancing user guide, "User claims encoding and signature verification"):
`GET https://public-keys.auth.elb.<region>.amazonaws.com/<kid>` answers the key as PEM; the
`x-amzn-oidc-data` header is a JWT whose header holds `alg` (ES256), `kid`, `signer` (the load
balancer's ARN), `iss`, `client` and `exp`, whose payload is the IdP's userinfo claims, and
whose three segments are base64url *with* `=` padding, the signature being ECDSA P-256 with
SHA-256 (r || s) over the padded segments.

    async with FakeAlbKeys() as keys:
        header = keys.sign({"sub": "u1", "email": "a@example.com"}, signer=ARN, ...)

An unknown key id gets a 403 (the endpoint is an S3 bucket: a missing object is AccessDenied).
`requests` counts key fetches, so tests can see the cache at work.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any, Self

from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

REGION = "us-east-1"
ARN = f"arn:aws:elasticloadbalancing:{REGION}:123456789012:loadbalancer/app/llmhub/50dc6c495c0c9188"
CLIENT_ID = "4d2a9a7k1h0example"
ISSUER = f"https://cognito-idp.{REGION}.amazonaws.com/{REGION}_Example1"
_ACCESS_DENIED = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    "<Message>Access Denied</Message></Error>"
)


def _b64_padded(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()  # keeps the '=' padding, as ALB does


class FakeAlbKeys:
    def __init__(self) -> None:
        self.keys: dict[str, ec.EllipticCurvePrivateKey] = {}
        self.requests: list[str] = []
        self.kid = self.new_key()
        self._runner: web.AppRunner | None = None
        self._port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def new_key(self) -> str:
        kid = str(uuid.uuid4())
        self.keys[kid] = ec.generate_private_key(ec.SECP256R1())
        return kid

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_get("/{kid}", self._key)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _key(self, request: web.Request) -> web.Response:
        kid = request.match_info["kid"]
        self.requests.append(kid)
        key = self.keys.get(kid)
        if key is None:
            return web.Response(status=403, text=_ACCESS_DENIED, content_type="application/xml")
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return web.Response(body=pem, content_type="application/octet-stream")

    def sign(
        self,
        claims: dict[str, Any],
        *,
        signer: str = ARN,
        client: str = CLIENT_ID,
        issuer: str = ISSUER,
        expires_in: float = 120,
        kid: str | None = None,
        signing_key: ec.EllipticCurvePrivateKey | None = None,
    ) -> str:
        """An `x-amzn-oidc-data` value; `signing_key` signs with another key than `kid`'s."""
        kid = kid or self.kid
        exp = int(time.time() + expires_in)
        header = {
            "typ": "JWT",
            "kid": kid,
            "alg": "ES256",
            "iss": issuer,
            "client": client,
            "signer": signer,
            "exp": exp,
        }
        payload = {**claims, "exp": exp, "iss": issuer}
        signing_input = (
            f"{_b64_padded(json.dumps(header).encode())}."
            f"{_b64_padded(json.dumps(payload).encode())}"
        )
        key = signing_key or self.keys[kid]
        r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return f"{signing_input}.{_b64_padded(signature)}"
