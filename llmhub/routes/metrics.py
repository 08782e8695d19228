"""`GET /metrics`: Prometheus text format, for this process only (each replica serves its
own). Who may scrape: anyone on loopback (a sidecar agent, `curl` on the host; unless
`metrics_loopback = false`), a bearer `metrics_token`, or a signed-in admin."""

from __future__ import annotations

import hmac
import ipaddress

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import Forbidden
from ..metrics import CONTENT_TYPE
from ._endpoint import endpoint, signed_in_admin


async def may_scrape(request: Request) -> bool:
    settings = request.app.state.settings
    token = settings.metrics_token
    if token is not None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), token.get_secret_value().encode()
        ):
            return True
    if settings.metrics_loopback and _is_loopback(request):
        return True
    return await signed_in_admin(request)


def _is_loopback(request: Request) -> bool:
    # The peer as uvicorn reports it: behind a trusted proxy, the forwarded client address.
    host = request.client.host if request.client else None
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@endpoint("public")
async def metrics(request: Request) -> Response:
    if not await may_scrape(request):
        raise Forbidden(
            "metrics are served to loopback, a metrics token or an admin", code="metrics_forbidden"
        )
    return Response(
        request.app.state.metrics.render(),
        media_type=CONTENT_TYPE,
        headers={"Cache-Control": "no-store"},
    )


routes = [Route("/metrics", metrics, methods=["GET"])]
