"""Sending messages and following answers as Server-Sent Events.

    POST /api/chats/{chat_id}/messages                         -> SSE (start, delta…, end)
    POST /api/chats/{chat_id}/messages/{message_id}/regenerate -> SSE
    GET  /api/generations/{generation_id}/stream               -> SSE, replay after Last-Event-ID
    POST /api/generations/{generation_id}/stop                 -> {"message": …}

A generation's id is its assistant message's id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .. import chat as chats
from ..errors import Conflict, NotFound
from ..generations import GenerationManager, sse_frame
from ..relay import end_event
from ..repo import chats as repo
from ..repo.chats import Message
from ._endpoint import Body, endpoint, principal, read_body
from .api_keys import path_uuid

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class SendBody(Body):
    # Longer than the limit is a 413 from chats.check_content, not a validation error.
    content: str
    parent_id: UUID | None = None
    model: str | None = Field(None, min_length=1, max_length=300)


class RegenerateBody(Body):
    model: str | None = Field(None, min_length=1, max_length=300)


def event_stream(frames: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(frames, media_type="text/event-stream", headers=SSE_HEADERS)


def _manager(request: Request) -> GenerationManager:
    manager: GenerationManager = request.app.state.generations
    return manager


@endpoint("user")
async def send_message(request: Request) -> Response:
    chat_id = path_uuid(request, "chat_id")
    # Someone else's chat is not found, whatever the body says.
    await chats.own_chat(request.app.state, principal(request), chat_id)
    body = await read_body(request, SendBody)
    generation = await chats.send(
        request.app.state,
        principal(request),
        chat_id,
        content=body.content,
        parent_id=body.parent_id,
        parent_given="parent_id" in body.model_fields_set,
        model=body.model,
    )
    return event_stream(generation.follow())


@endpoint("user")
async def regenerate(request: Request) -> Response:
    chat_id = path_uuid(request, "chat_id")
    message_id = path_uuid(request, "message_id")
    await chats.own_chat(request.app.state, principal(request), chat_id)
    body = await read_body(request, RegenerateBody)
    generation = await chats.regenerate(
        request.app.state, principal(request), chat_id, message_id, body.model
    )
    return event_stream(generation.follow())


def _last_event_id(request: Request) -> int:
    """EventSource sends the header on reconnect; a first attach may pass ?last_event_id=."""
    raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id") or ""
    raw = raw.strip()
    # ASCII digits only (str.isdigit also takes "²", which int() refuses), and short enough
    # for int(): anything else replays from the start, like no id at all.
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else 0


async def _own_answer(request: Request, generation_id: UUID) -> Message:
    message = await repo.get_message(
        request.app.state.pool, principal(request).user.id, generation_id
    )
    if message is None or message.role != "assistant":
        raise NotFound("generation not found", code="generation_not_found")
    return message


@endpoint("user")
async def stream_generation(request: Request) -> Response:
    generation_id = path_uuid(request, "generation_id")
    user_id = principal(request).user.id
    generation = _manager(request).get(generation_id, user_id)
    if generation is not None:
        return event_stream(generation.follow(_last_event_id(request)))
    message = await _own_answer(request, generation_id)
    if message.status == "streaming":  # running on another replica: follow it from here
        relayed = await request.app.state.relay.attach(message, user_id)
        return event_stream(relayed.follow(_last_event_id(request)))
    return event_stream(_snapshot(message))  # finished: what the database holds


async def _snapshot(message: Message) -> AsyncIterator[bytes]:
    frames = [sse_frame(0, "snapshot", {"message": message.public()})]
    if message.status != "streaming":
        frames.append(sse_frame(0, "end", end_event(message)))
    yield b"".join(frames)


@endpoint("user")
async def stop_generation(request: Request) -> Response:
    generation_id = path_uuid(request, "generation_id")
    manager = _manager(request)
    user_id = principal(request).user.id
    generation = manager.get(generation_id, user_id)
    if generation is not None:
        await manager.stop(generation)
    message = await _own_answer(request, generation_id)
    if message.status == "streaming":
        # Another replica runs it: it stops the model and saves before acknowledging.
        await request.app.state.relay.stop(generation_id, user_id)
        message = await _own_answer(request, generation_id)
    if message.status == "streaming":
        # Nobody answered: its server may have died. The sweep interrupts what it left.
        await manager.sweep()
        message = await _own_answer(request, generation_id)
    if message.status == "streaming":
        raise Conflict(
            "the server running this answer is not responding; try again shortly",
            code="generation_elsewhere",
        )
    return JSONResponse({"message": message.public()})


routes = [
    Route("/api/chats/{chat_id}/messages", send_message, methods=["POST"]),
    Route("/api/chats/{chat_id}/messages/{message_id}/regenerate", regenerate, methods=["POST"]),
    Route("/api/generations/{generation_id}/stream", stream_generation, methods=["GET"]),
    Route("/api/generations/{generation_id}/stop", stop_generation, methods=["POST"]),
]
