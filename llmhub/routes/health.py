"""Liveness (no I/O) and readiness (database and providers, from the background probes)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._endpoint import endpoint, signed_in_admin

_OK = b'{"status":"ok"}'


@endpoint("public")
async def live(request: Request) -> Response:
    return Response(_OK, media_type="application/json")


@endpoint("public")
async def ready(request: Request) -> Response:
    """503 only when the database is down: a provider being down degrades, it does not unready.
    Answered from memory (see `llmhub.health`); error details, which name internal hosts, are
    shown to signed-in admins only."""
    state = request.app.state
    show_details = state.health.database.ok and await signed_in_admin(request)
    status, body = state.health.report(state.settings.mode, details=show_details)
    return JSONResponse(body, status_code=status)


routes = [Route("/health", live), Route("/health/ready", ready)]
