"""Liveness (no I/O) and readiness (database and providers)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from providers.errors import LLMHubError

from ..db import is_reachable
from ._endpoint import endpoint

_OK = b'{"status":"ok"}'


@endpoint("public")
async def live(request: Request) -> Response:
    return Response(_OK, media_type="application/json")


@endpoint("public")
async def ready(request: Request) -> Response:
    """503 only when the database is down: a provider being down degrades, it does not unready.
    Error details (which name internal hosts) are shown to signed-in admins only."""
    state = request.app.state
    db_ok, db_detail = await is_reachable(state.pool)
    show_details = db_ok and await _is_admin(request)
    providers = {
        name: {"ok": h.ok, "latency_ms": h.latency_ms, "detail": h.detail if show_details else None}
        for name, h in state.registry.health().items()
    }
    if not db_ok:
        status = "unavailable"
    elif all(p["ok"] for p in providers.values()):
        status = "ok"
    else:
        status = "degraded"
    body = {
        "status": status,
        "mode": state.settings.mode,
        "database": {"ok": db_ok, "detail": db_detail if show_details else None},
        "providers": providers,
    }
    return JSONResponse(body, status_code=200 if db_ok else 503)


async def _is_admin(request: Request) -> bool:
    if "authorization" not in request.headers and not request.cookies:
        return False  # the load balancer's probe: no lookup
    try:
        principal = await request.app.state.auth.authenticate(request)
    except LLMHubError:
        return False
    return principal is not None and principal.user.is_admin and not principal.user.disabled


routes = [Route("/health", live), Route("/health/ready", ready)]
