"""How a route declares who may call it, and how it reads a JSON body.

`@endpoint("user")` marks the handler (`handler.access`) so tests can walk the route table and
check every route's authorisation without a list to keep in sync.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from ..auth.identity import SAFE_METHODS, Principal, check_same_origin
from ..errors import BadRequest

Access = Literal["public", "user", "admin"]
Handler = Callable[[Request], Awaitable[Response]]
M = TypeVar("M", bound=BaseModel)


def endpoint(access: Access) -> Callable[[Handler], Handler]:
    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: Request) -> Response:
            if access == "public":
                if request.method not in SAFE_METHODS:
                    check_same_origin(request)
            else:
                auth = request.app.state.auth
                request.state.principal = await auth.require(request, admin=access == "admin")
            return await handler(request)

        guarded.access = access  # type: ignore[attr-defined]
        return guarded

    return decorate


def principal(request: Request) -> Principal:
    return request.state.principal


class Body(BaseModel):
    """Request bodies: unknown fields are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


async def read_body(request: Request, model: type[M]) -> M:
    raw = await request.body()
    try:
        data = json.loads(raw) if raw else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("request body is not valid JSON", code="invalid_json") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(describe_validation_error(exc), code="validation_error") from None


def describe_validation_error(exc: ValidationError) -> str:
    error = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown field"
    return f"{where}: {message}" if where else message
