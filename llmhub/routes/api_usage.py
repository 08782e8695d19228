"""Token usage: `GET /api/usage` (own, by UTC day and model; admins may ask for any user or
for everyone, grouped by user)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import BadRequest, Forbidden
from ..repo import chats as repo
from ._endpoint import endpoint, principal

DEFAULT_DAYS = 30
MAX_DAYS = 366


def _date(request: Request, name: str) -> date | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadRequest(
            f"{name}: must be a date like 2025-01-31", code="validation_error"
        ) from None


@endpoint("user")
async def usage(request: Request) -> Response:
    me = principal(request).user
    params = request.query_params
    everyone = params.get("all", "false").lower() in ("true", "1")
    user_id = me.id
    if "user_id" in params:
        try:
            user_id = UUID(params["user_id"])
        except ValueError:
            raise BadRequest("user_id: not a valid id", code="validation_error") from None
    if (everyone or user_id != me.id) and not me.is_admin:
        raise Forbidden("only admins may see other users' usage", code="admin_required")
    until = _date(request, "to") or datetime.now(UTC).date()
    since: date | None
    end: date | None
    try:
        since = _date(request, "from") or until - timedelta(days=DEFAULT_DAYS - 1)
        end = until + timedelta(days=1)
    except OverflowError:  # at the ends of the calendar
        since = end = None
    if since is None or end is None or since > until or (until - since).days >= MAX_DAYS:
        raise BadRequest(f"from/to: a range of 1 to {MAX_DAYS} days", code="validation_error")
    rows = await repo.usage_report(
        request.app.state.pool,
        user_id=None if everyone else user_id,
        since=datetime.combine(since, time(), UTC),
        until=datetime.combine(end, time(), UTC),
        by_user=everyone,
    )
    data = []
    totals = {"requests": 0, "input_tokens": 0, "output_tokens": 0, "cached_tokens": 0}
    for row in rows:
        item = {**row, "day": row["day"].isoformat()}
        if "user_id" in item:
            item["user_id"] = str(item["user_id"]) if item["user_id"] else None
        for key in totals:
            totals[key] += item[key]
        data.append(item)
    return JSONResponse(
        {
            "from": since.isoformat(),
            "to": until.isoformat(),
            "user_id": None if everyone else str(user_id),
            "data": data,
            "totals": totals,
        }
    )


routes = [Route("/api/usage", usage, methods=["GET"])]
