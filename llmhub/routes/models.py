"""Models for users (`/api/models`) and their management by admins (`/api/admin/models…`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from providers.errors import LLMHubError, Unsupported
from providers.ollama_pool import OllamaPool

from ..catalog import detail, memory
from ..errors import NotFound, error_body
from ..repo import models as repo
from ._endpoint import Body, endpoint, principal, read_body


class UpdateModelBody(Body):
    enabled: bool | None = None
    display_name: str | None = Field(None, max_length=200)


class PullBody(Body):
    name: str = Field(min_length=1, max_length=300)
    provider: str = "ollama"
    # With several Ollama servers: pull onto this one only (its URL); default every server.
    server: str | None = Field(None, min_length=1, max_length=300)


async def visible_models(request: Request) -> list[dict[str, Any]]:
    models: list[dict[str, Any]] = await request.app.state.catalog.visible()
    return models


def _providers(request: Request, *, details: bool = True) -> dict[str, dict[str, Any]]:
    """Provider health; the error details name internal hosts, so only admins get them."""
    return {
        name: {"ok": h.ok, "latency_ms": h.latency_ms, "detail": h.detail if details else None}
        for name, h in request.app.state.registry.health().items()
    }


def _model_id(request: Request) -> str:
    model_id: str = request.path_params["model_id"]
    if not 0 < len(model_id) <= 300 or not model_id.isprintable():
        raise NotFound(f"model {model_id[:300]!r} is not in the catalog", code="model_not_found")
    return model_id


@endpoint("user")
async def list_models(request: Request) -> Response:
    providers = _providers(request, details=principal(request).user.is_admin)
    return JSONResponse({"data": await visible_models(request), "providers": providers})


@endpoint("admin")
async def admin_list_models(request: Request) -> Response:
    """Live models (including disabled ones), plus those seen before but not offered now."""
    live = await request.app.state.catalog.visible(include_disabled=True, locations=True)
    live_ids = {m["id"] for m in live}
    gone = [
        {
            "id": row["id"],
            "name": row["display_name"] or row["id"],
            "provider": row["provider"],
            "provider_ok": False,
            "enabled": row["enabled"],
            "capabilities": row["capabilities"],
            **detail(
                row["provider"],
                family=row["family"],
                parameter_size=row["parameter_size"],
                quantization=row["quantization"],
                context_length=row["context_length"],
                size_bytes=row["size_bytes"],
                lifecycle=row["lifecycle"],
                last_seen_at=row["last_seen_at"],
            ),
            **memory(row["provider"], None),
            "locations": [],
            "available": False,
        }
        for row in await repo.all_models(request.app.state.pool)
        if row["id"] not in live_ids
    ]
    data = [{**m, "available": True} for m in live] + gone
    return JSONResponse({"data": data, "providers": _providers(request)})


@endpoint("admin")
async def admin_update_model(request: Request) -> Response:
    body = await read_body(request, UpdateModelBody)
    model_id = _model_id(request)
    row = await repo.update_model(
        request.app.state.pool, model_id, enabled=body.enabled, display_name=body.display_name
    )
    if row is None:
        raise NotFound(f"model '{model_id}' is not in the catalog", code="model_not_found")
    await request.app.state.invalidation.catalog()
    return JSONResponse(
        {"model": {k: row[k] for k in ("id", "provider", "enabled", "display_name")}}
    )


def _pull_provider(request: Request, name: str, server: str | None = None) -> Any:
    provider = request.app.state.registry.providers.get(name)
    if provider is None or not provider.supports_pull:
        raise Unsupported(f"provider '{name}' cannot pull or delete models")
    if server is not None and not isinstance(provider, OllamaPool):
        raise Unsupported("'server' picks one of several Ollama servers; one is configured")
    return provider


def _on(server: str | None) -> dict[str, str]:
    return {"server": server} if server is not None else {}


@endpoint("admin")
async def admin_pull_model(request: Request) -> Response:
    """Streams Ollama's pull progress as SSE: `progress` events, then `done` or `error`."""
    body = await read_body(request, PullBody)
    provider = _pull_provider(request, body.provider, body.server)
    registry = request.app.state.registry

    async def events() -> AsyncIterator[bytes]:
        pulls = provider.pull_model(body.name, **_on(body.server))
        try:
            async for step in pulls:
                percent = (
                    round(100 * step.completed / step.total, 1)
                    if step.total and step.completed is not None
                    else None
                )
                payload = {
                    "status": step.status,
                    "digest": step.digest,
                    "total": step.total,
                    "completed": step.completed,
                    "percent": percent,
                    "server": step.server,  # with several Ollama servers
                }
                yield _event("progress", payload)
            await registry.refresh_provider(body.provider)
            await request.app.state.invalidation.models(body.provider)
            yield _event("done", {"model": body.name})
        except LLMHubError as exc:
            yield _event("error", error_body(exc.message, exc.type, exc.code)["error"])
        finally:
            await pulls.aclose()

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _event(name: str, payload: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode()


@endpoint("admin")
async def admin_delete_model(request: Request) -> Response:
    model_id = _model_id(request)
    registry = request.app.state.registry
    provider, native_id = registry.resolve(model_id)
    server = request.query_params.get("server") or None  # one of several Ollama servers
    _pull_provider(request, provider.name, server)
    await provider.delete_model(native_id, **_on(server))
    await registry.refresh_provider(provider.name)
    await request.app.state.invalidation.models(provider.name)
    return JSONResponse({"ok": True})


@endpoint("admin")
async def admin_providers(request: Request) -> Response:
    """Provider health, and for Ollama the models loaded in memory right now."""
    providers = _providers(request)
    ollama = request.app.state.registry.providers.get("ollama")
    if ollama is not None and providers["ollama"]["ok"]:
        try:
            loaded = await ollama.loaded_models()
            providers["ollama"]["loaded"] = [
                {
                    "name": m.name,
                    "size_bytes": m.size_bytes,
                    "size_vram": m.size_vram,
                    "expires_at": m.expires_at,
                }
                for m in loaded
            ]
        except LLMHubError as exc:
            providers["ollama"]["loaded_error"] = exc.message
    if isinstance(ollama, OllamaPool):
        providers["ollama"]["servers"] = [
            {
                "name": server.name,
                "ok": server.up,
                "detail": server.detail,
                "in_flight": server.in_flight,
                "models": sorted(server.models),
            }
            for server in ollama.servers
        ]
    return JSONResponse({"providers": providers})


routes = [
    Route("/api/models", list_models, methods=["GET"]),
    Route("/api/admin/models", admin_list_models, methods=["GET"]),
    Route("/api/admin/models/pull", admin_pull_model, methods=["POST"]),
    Route("/api/admin/providers", admin_providers, methods=["GET"]),
    Route("/api/admin/models/{model_id:path}", admin_update_model, methods=["PATCH"]),
    Route("/api/admin/models/{model_id:path}", admin_delete_model, methods=["DELETE"]),
]
