"""A user's own API keys: `/api/keys`."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import accounts
from ..errors import BadRequest, Forbidden, NotFound
from ..repo import accounts as repo
from ._endpoint import Body, Name, endpoint, principal, read_body


class Limits(Body):
    requests_per_minute: int | None = Field(None, ge=0, le=2**31 - 1)
    tokens_per_minute: int | None = Field(None, ge=0, le=2**31 - 1)
    tokens_per_day: int | None = Field(None, ge=0, le=2**31 - 1)

    def set_values(self) -> dict[str, int]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class CreateKeyBody(Body):
    name: Name = Field("", max_length=200)
    expires_at: datetime | None = None
    allowed_models: list[str] | None = Field(None, max_length=500)
    # Limits of this key alone, within (never beyond) its owner's: both buckets are checked.
    limits: Limits | None = None


def path_uuid(request: Request, name: str) -> UUID:
    """A malformed id is simply not found: same answer as someone else's resource."""
    try:
        return UUID(request.path_params[name])
    except ValueError:
        raise NotFound("not found") from None


def _check_key_management(request: Request) -> None:
    """A key limited to some models or to its own limits must not mint or revoke keys: a new key
    would carry none of its restrictions."""
    key = principal(request).api_key
    if key is not None and (key.allowed_models is not None or key.limits):
        raise Forbidden("this API key is restricted and cannot manage API keys", code="key_scope")


@endpoint("user")
async def list_keys(request: Request) -> Response:
    keys = await repo.list_api_keys(request.app.state.pool, principal(request).user.id)
    return JSONResponse({"data": [k.public() for k in keys]})


@endpoint("user")
async def create_key(request: Request) -> Response:
    _check_key_management(request)
    body = await read_body(request, CreateKeyBody)
    expires_at = body.expires_at
    if expires_at is not None:
        try:
            expires_at = expires_at.replace(tzinfo=expires_at.tzinfo or UTC).astimezone(UTC)
        except OverflowError:  # past datetime.max once in UTC: could not be read back
            raise BadRequest("expires_at: out of range", code="validation_error") from None
        if expires_at <= datetime.now(UTC):
            raise BadRequest("expires_at: must be in the future", code="validation_error")
    key, record = await accounts.create_api_key(
        request.app.state.pool,
        principal(request).user.id,
        name=body.name,
        expires_at=expires_at,
        allowed_models=body.allowed_models,
        limits=body.limits.set_values() if body.limits else {},
    )
    return JSONResponse({"key": key, "api_key": record.public()}, 201)


@endpoint("user")
async def revoke_key(request: Request) -> Response:
    _check_key_management(request)
    key_id = path_uuid(request, "key_id")
    revoked = await repo.revoke_api_key(request.app.state.pool, principal(request).user.id, key_id)
    if revoked is None:
        raise NotFound("API key not found", code="api_key_not_found")
    await request.app.state.invalidation.user(revoked.user_id)
    return JSONResponse({"api_key": revoked.public()})


routes = [
    Route("/api/keys", list_keys, methods=["GET"]),
    Route("/api/keys", create_key, methods=["POST"]),
    Route("/api/keys/{key_id}", revoke_key, methods=["DELETE"]),
]
