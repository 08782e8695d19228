"""Full-text search over the signed-in user's own chats: `GET /api/search?q=`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import chat as chats
from ..errors import BadRequest
from ..repo import chats as repo
from ._endpoint import endpoint, principal

MAX_QUERY_CHARS = 500


@endpoint("user")
async def search(request: Request) -> Response:
    text = request.query_params.get("q", "")
    if len(text) > MAX_QUERY_CHARS:
        raise BadRequest(f"q: at most {MAX_QUERY_CHARS} characters", code="validation_error")
    raw_limit = request.query_params.get("limit", "20")
    if not (raw_limit.isascii() and raw_limit.isdigit()) or not 1 <= int(raw_limit) <= 100:
        raise BadRequest("limit: must be an integer from 1 to 100", code="validation_error")
    query = chats.search_query(text)
    if query is None:
        return JSONResponse({"data": []})
    hits = await repo.search_messages(
        request.app.state.pool, principal(request).user.id, query, int(raw_limit)
    )
    return JSONResponse(
        {
            "data": [
                {
                    "chat_id": str(h.chat_id),
                    "chat_title": h.chat_title,
                    "archived": h.archived,
                    "message_id": str(h.message_id),
                    "role": h.role,
                    "rank": round(h.rank, 6),
                    "created_at": h.created_at.isoformat(),
                    "snippet": chats.snippet_html(h.snippet),
                }
                for h in hits
            ]
        }
    )


routes = [Route("/api/search", search, methods=["GET"])]
