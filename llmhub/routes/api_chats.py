"""Chats for the UI: `/api/chats` (list, create, open, change, delete, export, import) and the
user's chat preferences."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import chat as chats
from ..errors import BadRequest, NotFound
from ..model_calls import check_model_allowed
from ..repo import chats as repo
from ..repo.chats import ChatCursor
from ._endpoint import (
    Body,
    describe_validation_error,
    endpoint,
    load_json,
    principal,
    read_body,
)
from .api_keys import path_uuid

DEFAULT_PAGE = 50
MAX_PAGE = 200


class ChatSettings(Body):
    model: str | None = Field(None, min_length=1, max_length=300)
    system_prompt: str | None = Field(None, max_length=chats.MAX_CONTENT_CHARS)
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=1_000_000)


class CreateChatBody(ChatSettings):
    title: str | None = Field(None, min_length=1, max_length=500)


class UpdateChatBody(ChatSettings):
    title: str | None = Field(None, min_length=1, max_length=500)
    pinned: bool | None = None
    archived: bool | None = None
    current_leaf_id: UUID | None = None


class TitleGeneration(Body):
    enabled: bool = True
    model: str | None = Field(None, min_length=1, max_length=300)


class PreferencesBody(Body):
    title_generation: TitleGeneration


async def _check_model(request: Request, model: str | None) -> None:
    """The same checks a call will meet (minus rate limits), so a bad choice fails early."""
    if model is not None:
        state = request.app.state
        provider, _ = state.registry.resolve(model)  # ModelNotFound: 404 with suggestions
        check_model_allowed(principal(request), model, provider.name)
        await state.catalog.check_enabled(model)


def encode_cursor(pinned: bool, updated_at: datetime, chat_id: UUID) -> str:
    raw = json.dumps([pinned, updated_at.isoformat(), str(chat_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> ChatCursor:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        pinned, updated_at, chat_id = json.loads(raw)
        return bool(pinned), datetime.fromisoformat(updated_at), UUID(str(chat_id))
    except (ValueError, TypeError, binascii.Error):
        raise BadRequest("cursor: not a cursor this API returned", code="invalid_cursor") from None


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    value = request.query_params.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(f"{name}: must be an integer", code="validation_error") from None
    if not low <= number <= high:
        raise BadRequest(f"{name}: must be between {low} and {high}", code="validation_error")
    return number


def _bool_param(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise BadRequest(f"{name}: must be true or false", code="validation_error")
    return value in ("true", "1")


@endpoint("user")
async def list_chats(request: Request) -> Response:
    limit = _int_param(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    cursor = request.query_params.get("cursor")
    after = decode_cursor(cursor) if cursor else None
    rows = await repo.list_chats(
        request.app.state.pool,
        principal(request).user.id,
        archived=_bool_param(request, "archived"),
        limit=limit + 1,
        after=after,
    )
    page = rows[:limit]
    last = page[-1] if page else None
    next_cursor = (
        encode_cursor(last.pinned, last.updated_at, last.id) if last and len(rows) > limit else None
    )
    return JSONResponse({"data": [c.public() for c in page], "next_cursor": next_cursor})


@endpoint("user")
async def create_chat(request: Request) -> Response:
    body = await read_body(request, CreateChatBody)
    await _check_model(request, body.model)
    chat = await repo.create_chat(
        request.app.state.pool,
        principal(request).user.id,
        title=body.title,
        model=body.model,
        system_prompt=body.system_prompt,
        settings={
            k: v
            for k, v in (("temperature", body.temperature), ("max_tokens", body.max_tokens))
            if v is not None
        },
    )
    return JSONResponse({"chat": chat.public()}, 201)


@endpoint("user")
async def get_chat(request: Request) -> Response:
    chat_id = path_uuid(request, "chat_id")
    user_id = principal(request).user.id
    pool = request.app.state.pool
    chat = await repo.get_chat(pool, user_id, chat_id)
    if chat is None:
        raise NotFound("chat not found", code="chat_not_found")
    messages = await repo.chat_messages_json(pool, user_id, chat_id)
    # {"chat": {...chat, "messages": [...]}} with the messages' JSON spliced in as it came.
    head = json.dumps(chat.public(), ensure_ascii=False, separators=(",", ":"))[:-1]
    body = f'{{"chat":{head},"messages":{messages}}}}}'
    return Response(body.encode(), media_type="application/json")


@endpoint("user")
async def update_chat(request: Request) -> Response:
    chat_id = path_uuid(request, "chat_id")
    body = await read_body(request, UpdateChatBody)
    user_id = principal(request).user.id
    given = body.model_fields_set
    for name in ("title", "pinned", "archived", "current_leaf_id"):
        if name in given and getattr(body, name) is None:
            raise BadRequest(f"{name}: may not be null", code="validation_error")
    if "model" in given:
        await _check_model(request, body.model)
    pool = request.app.state.pool
    if body.current_leaf_id is not None:
        leaf = await repo.get_message(pool, user_id, body.current_leaf_id)
        if leaf is None or leaf.chat_id != chat_id:
            raise BadRequest("current_leaf_id: no such message in this chat",
                             code="invalid_parent")  # fmt: skip
    columns = ("title", "pinned", "archived", "model", "system_prompt", "current_leaf_id")
    changes = {name: getattr(body, name) for name in columns if name in given}
    settings: dict[str, Any] = {
        name: getattr(body, name) for name in ("temperature", "max_tokens") if name in given
    }
    chat = await repo.update_chat(pool, user_id, chat_id, changes, settings)
    if chat is None:
        raise NotFound("chat not found", code="chat_not_found")
    return JSONResponse({"chat": chat.public()})


@endpoint("user")
async def delete_chat(request: Request) -> Response:
    chat_id = path_uuid(request, "chat_id")
    user_id = principal(request).user.id
    if await repo.get_chat(request.app.state.pool, user_id, chat_id) is None:
        raise NotFound("chat not found", code="chat_not_found")
    manager = request.app.state.generations
    for generation in manager.running_in_chat(chat_id):
        await manager.stop(generation)
    await request.app.state.relay.stop_in_chat(chat_id, user_id)  # those other replicas run
    if not await repo.delete_chat(request.app.state.pool, user_id, chat_id):
        raise NotFound("chat not found", code="chat_not_found")
    return Response(status_code=204)


# -- export / import -----------------------------------------------------------------------------


def _attachment(body: str | bytes, media_type: str, filename: str) -> Response:
    return Response(
        body,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _json_bytes(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


@endpoint("user")
async def export_all(request: Request) -> Response:
    found = await repo.chats_with_messages(request.app.state.pool, principal(request).user.id)
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    return _attachment(
        _json_bytes(chats.export_document(found)),
        "application/json",
        f"llmhub-chats-{stamp}.json",
    )


@endpoint("user")
async def export_chat(request: Request) -> Response:
    chat_id = path_uuid(request, "chat_id")
    kind = request.query_params.get("format", "json")
    if kind not in ("json", "markdown"):
        raise BadRequest("format: must be json or markdown", code="validation_error")
    found = await repo.chats_with_messages(
        request.app.state.pool, principal(request).user.id, chat_id
    )
    if not found:
        raise NotFound("chat not found", code="chat_not_found")
    if kind == "markdown":
        chat, messages = found[0]
        return _attachment(
            chats.markdown(chat, messages), "text/markdown; charset=utf-8", f"chat-{chat_id}.md"
        )
    return _attachment(
        _json_bytes(chats.export_document(found)), "application/json", f"chat-{chat_id}.json"
    )


@endpoint("user")
async def import_chats(request: Request) -> Response:
    data = load_json(await request.body())
    try:
        document = chats.ExportDocument.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(describe_validation_error(exc), code="invalid_import") from None
    prepared = chats.prepare_import(document)
    user_id = principal(request).user.id
    pool = request.app.state.pool
    await repo.import_chats(pool, user_id, prepared)
    imported = [await repo.get_chat(pool, user_id, c.id) for c in prepared]
    return JSONResponse({"data": [c.public() for c in imported if c]}, 201)


# -- preferences ---------------------------------------------------------------------------------


def _preferences(stored: dict[str, Any]) -> dict[str, Any]:
    titles = stored.get("title_generation") or {}
    return {
        "title_generation": {
            "enabled": titles.get("enabled", True),
            "model": titles.get("model"),
        }
    }


@endpoint("user")
async def get_preferences(request: Request) -> Response:
    stored = await repo.user_preferences(request.app.state.pool, principal(request).user.id)
    return JSONResponse(_preferences(stored))


@endpoint("user")
async def update_preferences(request: Request) -> Response:
    body = await read_body(request, PreferencesBody)
    await _check_model(request, body.title_generation.model)
    stored = await repo.update_user_preferences(
        request.app.state.pool,
        principal(request).user.id,
        {"title_generation": body.title_generation.model_dump()},
    )
    return JSONResponse(_preferences(stored))


# Literal paths before `/api/chats/{chat_id}`, which would otherwise take them.
routes = [
    Route("/api/chats", list_chats, methods=["GET"]),
    Route("/api/chats", create_chat, methods=["POST"]),
    Route("/api/chats/export", export_all, methods=["GET"]),
    Route("/api/chats/import", import_chats, methods=["POST"]),
    Route("/api/chats/{chat_id}", get_chat, methods=["GET"]),
    Route("/api/chats/{chat_id}", update_chat, methods=["PATCH"]),
    Route("/api/chats/{chat_id}", delete_chat, methods=["DELETE"]),
    Route("/api/chats/{chat_id}/export", export_chat, methods=["GET"]),
    Route("/api/preferences", get_preferences, methods=["GET"]),
    Route("/api/preferences", update_preferences, methods=["PATCH"]),
]
