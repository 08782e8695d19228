"""How a route declares who may call it, and how it reads a JSON body.

`@endpoint("user")` marks the handler (`handler.access`) so tests can walk the route table and
check every route's authorisation without a list to keep in sync.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from providers.errors import LLMHubError

from ..auth.identity import SAFE_METHODS, Principal, check_same_origin
from ..auth.sessions import set_session_cookie
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
            response = await handler(request)
            # A session the load balancer's identity header just started: hand over its cookie.
            started = getattr(request.state, "started_session", None)
            if started is not None:
                set_session_cookie(request, response, started)
            return response

        guarded.access = access  # type: ignore[attr-defined]
        return guarded

    return decorate


def principal(request: Request) -> Principal:
    who: Principal = request.state.principal
    return who


async def signed_in_admin(request: Request) -> bool:
    """For public routes that show admins more: whether the caller is an active admin.
    A request with neither credentials nor cookies (a load balancer's probe) costs nothing."""
    if "authorization" not in request.headers and not request.cookies:
        return False
    try:
        found = await request.app.state.auth.authenticate(request)
    except LLMHubError:
        return False
    return found is not None and found.user.is_admin and not found.user.disabled


# PostgreSQL cannot store NUL in text, and a lone surrogate cannot be encoded as UTF-8 at all.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _no_control_characters(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


# Names people choose and others see, in the UI and printed by the CLI in a terminal.
Name = Annotated[str, AfterValidator(_no_control_characters)]


class Body(BaseModel):
    """Request bodies: unknown fields are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


async def read_body(request: Request, model: type[M]) -> M:
    raw = await request.body()
    data = load_json(raw) if raw else {}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(describe_validation_error(exc), code="validation_error") from None


def load_json(raw: bytes) -> Any:
    """Strict JSON whose every string can be stored: BadRequest (400) for anything else, never a
    500 for a body nested too deep, an integer too long, NaN or Infinity, NUL or a lone surrogate.
    """
    try:
        data = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, RecursionError):  # ValueError covers JSONDecodeError and bad UTF-8
        raise BadRequest("request body is not valid JSON", code="invalid_json") from None
    if not _storable(data):
        raise BadRequest(
            "text must not contain NUL characters or unpaired surrogates",
            code="validation_error",
        )
    return data


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def _storable(data: Any) -> bool:
    """Every string (and key) in parsed JSON can be stored as PostgreSQL text. Iterative: the
    parser allows nesting nearly as deep as the recursion limit."""
    pending = [data]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if _UNSTORABLE.search(value):
                return False
        elif isinstance(value, dict):
            pending.extend(value)
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return True


def describe_validation_error(exc: ValidationError) -> str:
    error = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown field"
    return f"{where}: {message}" if where else message
