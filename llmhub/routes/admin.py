"""User management and default limits, for admins: `/api/admin/*`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import accounts
from ..auth.limits import describe
from ..auth.passwords import MAX_LENGTH
from ..errors import BadRequest
from ..repo import accounts as repo
from ..repo import identities
from ._endpoint import Body, Name, endpoint, read_body
from .api_keys import Limits, path_uuid


class UpdateUserBody(Body):
    role: Literal["admin", "user", "pending"] | None = None
    disabled: bool | None = None
    display_name: Name | None = Field(None, max_length=200)
    limits: Limits | None = None


class PasswordResetBody(Body):
    password: str = Field(max_length=MAX_LENGTH)


@endpoint("admin")
async def list_users(request: Request) -> Response:
    role = request.query_params.get("role")
    if role is not None and role not in accounts.ROLES:
        raise BadRequest(
            f"role: must be one of {', '.join(accounts.ROLES)}", code="validation_error"
        )
    pool = request.app.state.pool
    users = await repo.list_users(pool, role)
    methods = await identities.sign_in_methods(pool)
    return JSONResponse({"data": [{**u.public(), "sign_in": methods.get(u.id, [])} for u in users]})


@endpoint("admin")
async def update_user(request: Request) -> Response:
    user_id = path_uuid(request, "user_id")
    body = await read_body(request, UpdateUserBody)
    user = await accounts.update_user(
        request.app.state.pool,
        user_id,
        role=body.role,
        disabled=body.disabled,
        display_name=body.display_name,
        limits=body.limits.set_values() if body.limits is not None else None,
    )
    await request.app.state.invalidation.user(user_id)
    return JSONResponse({"user": user.public()})


@endpoint("admin")
async def reset_password(request: Request) -> Response:
    user_id = path_uuid(request, "user_id")
    body = await read_body(request, PasswordResetBody)
    await accounts.set_password(request.app.state.pool, user_id, body.password)
    await request.app.state.invalidation.user(user_id)
    return JSONResponse({"ok": True})


@endpoint("admin")
async def delete_user(request: Request) -> Response:
    user_id = path_uuid(request, "user_id")
    await accounts.delete_user(request.app.state.pool, user_id)
    await request.app.state.invalidation.user(user_id)
    return JSONResponse({"ok": True})


@endpoint("admin")
async def get_limits(request: Request) -> Response:
    return JSONResponse({"limits": describe(await request.app.state.default_limits())})


@endpoint("admin")
async def put_limits(request: Request) -> Response:
    body = await read_body(request, Limits)
    current = await request.app.state.default_limits()
    updated = {**current, **body.set_values()}
    await repo.put_setting(request.app.state.pool, "default_limits", updated)
    await request.app.state.invalidation.limits()
    return JSONResponse({"limits": describe(updated)})


routes = [
    Route("/api/admin/users", list_users, methods=["GET"]),
    Route("/api/admin/users/{user_id}", update_user, methods=["PATCH"]),
    Route("/api/admin/users/{user_id}", delete_user, methods=["DELETE"]),
    Route("/api/admin/users/{user_id}/password", reset_password, methods=["POST"]),
    Route("/api/admin/limits", get_limits, methods=["GET"]),
    Route("/api/admin/limits", put_limits, methods=["PUT"]),
]
