"""Liveness (no I/O) and readiness (database and providers)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..db import is_reachable
from ._endpoint import endpoint

_OK = b'{"status":"ok"}'


@endpoint("public")
async def live(request: Request) -> Response:
    return Response(_OK, media_type="application/json")


@endpoint("public")
async def ready(request: Request) -> Response:
    """503 only when the database is down: a provider being down degrades, it does not unready."""
    state = request.app.state
    db_ok, db_detail = await is_reachable(state.pool)
    providers = {
        name: {"ok": h.ok, "latency_ms": h.latency_ms, "detail": h.detail}
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
        "database": {"ok": db_ok, "detail": db_detail},
        "providers": providers,
    }
    return JSONResponse(body, status_code=200 if db_ok else 503)


routes = [Route("/health", live), Route("/health/ready", ready)]
