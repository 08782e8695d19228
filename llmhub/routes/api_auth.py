"""Sign-up, sign-in, sign-out and the current user: `/api/auth/*`."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import accounts
from ..auth import passwords, sessions, tokens
from ..auth.identity import Authenticator, Principal
from ..errors import Forbidden, Unauthorized
from ..repo import accounts as repo
from ..repo import identities
from ..repo.accounts import User
from ._endpoint import Body, Name, endpoint, principal, read_body


class SignupBody(Body):
    email: str = Field(max_length=320)
    password: str = Field(max_length=passwords.MAX_LENGTH)
    display_name: Name = Field("", max_length=200)


class LoginBody(Body):
    email: str = Field(max_length=320)
    password: str = Field(max_length=passwords.MAX_LENGTH)


class PasswordBody(Body):
    current_password: str = Field(max_length=passwords.MAX_LENGTH)
    new_password: str = Field(max_length=passwords.MAX_LENGTH)


_client_ip = sessions.client_ip


async def _start_session(request: Request, user: User, status: int = 200) -> Response:
    session_id = await sessions.start_session(request, user)
    csrf = request.app.state.auth.csrf_token(session_id)
    response = JSONResponse({"user": user.public(), "csrf_token": csrf}, status)
    sessions.set_session_cookie(request, response, session_id)
    return response


def _require_password_login(request: Request) -> None:
    if not request.app.state.settings.auth.password_login:
        raise Forbidden(
            "password sign-in is turned off; use your organisation's sign-in",
            code="password_login_disabled",
        )


@endpoint("public")
async def signup(request: Request) -> Response:
    _require_password_login(request)
    body = await read_body(request, SignupBody)
    pool = request.app.state.pool
    policy = request.app.state.settings.signup_policy
    is_first = not await pool.fetchval("SELECT EXISTS (SELECT 1 FROM users)")
    if policy == "closed" and not is_first:
        raise Forbidden("sign-up is closed; ask an admin for an account", code="signup_closed")
    await request.app.state.signup_limiter.admit(_client_ip(request))
    role = "pending" if policy == "approval" else "user"
    user = await accounts.create_user(
        pool,
        body.email,
        body.password,
        display_name=body.display_name,
        role=role,
        first_only=policy == "closed",  # checked again under the lock: sign-ups can race
    )
    if user.role == "pending":
        return JSONResponse({"user": user.public(), "pending": True}, 202)
    await repo.record_login(pool, user.id)
    return await _start_session(request, user, 201)


@endpoint("public")
async def login(request: Request) -> Response:
    _require_password_login(request)
    body = await read_body(request, LoginBody)
    pool = request.app.state.pool
    throttle = request.app.state.login_throttle
    ip = _client_ip(request)
    email = body.email.strip()
    found = await repo.user_by_email(pool, email)
    # Throttle the account itself, however its email is spelt; unknown emails by their text.
    account = f"id:{found[0].id}" if found else f"email:{email.lower()}"
    attempt = await throttle.check(account, ip)
    if not await passwords.verify_password(found[1] if found else None, body.password):
        await throttle.failed(attempt)
        raise Unauthorized("wrong email or password", code="invalid_credentials")
    assert found is not None
    user, password_hash = found
    assert password_hash is not None  # it was verified against a real hash
    await throttle.succeeded(attempt)
    if user.disabled:
        raise Forbidden("this account is disabled", code="account_disabled")
    if user.role == "pending":
        raise Forbidden("this account is waiting for an admin's approval", code="account_pending")
    if passwords.needs_rehash(password_hash):
        new_hash = await passwords.hash_password(body.password)
        await repo.update_user(pool, user.id, password_hash=new_hash)
    await repo.record_login(pool, user.id)
    return await _start_session(request, user)


@endpoint("user")
async def logout(request: Request) -> Response:
    """Ends this session; `redirect`, when set, is the identity provider's sign-out page,
    where the browser should go next (otherwise it would be signed straight back in)."""
    me: Principal = principal(request)
    auth: Authenticator = request.app.state.auth
    sign_in = None
    if me.session_id is not None:
        id_hash = tokens.digest(me.session_id)
        sign_in = await identities.session_sign_in(auth.pool, id_hash)
        await repo.delete_session(auth.pool, id_hash)
        await request.app.state.invalidation.session(id_hash)
    return await _end_session(request, {"ok": True}, sign_in)


@endpoint("user")
async def logout_everywhere(request: Request) -> Response:
    me: Principal = principal(request)
    auth: Authenticator = request.app.state.auth
    sign_in = None
    if me.session_id is not None:
        sign_in = await identities.session_sign_in(auth.pool, tokens.digest(me.session_id))
    ended = await repo.delete_user_sessions(auth.pool, me.user.id)
    await request.app.state.invalidation.user(me.user.id)
    return await _end_session(request, {"ok": True, "sessions_ended": ended}, sign_in)


async def _end_session(request: Request, body: dict[str, Any], sign_in: str | None) -> Response:
    sso = request.app.state.sso
    body["redirect"] = await sso.sign_out_redirect(request, sign_in)
    response = JSONResponse(body)
    sessions.clear_session_cookie(request, response)
    sso.expire_alb_cookies(request, response)
    return response


@endpoint("user")
async def me(request: Request) -> Response:
    current: Principal = principal(request)
    body: dict[str, Any] = {"user": current.user.public()}
    if current.session_id is not None:
        body["csrf_token"] = request.app.state.auth.csrf_token(current.session_id)
    else:
        body["api_key"] = current.api_key.public() if current.api_key else None
    return JSONResponse(body)


@endpoint("user")
async def change_password(request: Request) -> Response:
    """Changing the password keeps this session and ends every other one."""
    _require_password_login(request)
    body = await read_body(request, PasswordBody)
    current: Principal = principal(request)
    auth: Authenticator = request.app.state.auth
    # Guessing the current password meets the same back-off as signing in.
    throttle = request.app.state.login_throttle
    account, ip = f"id:{current.user.id}", _client_ip(request)
    attempt = await throttle.check(account, ip)
    found = await repo.user_by_id(auth.pool, current.user.id)
    if found is None or not await passwords.verify_password(found[1], body.current_password):
        await throttle.failed(attempt)
        raise Forbidden("current password is wrong", code="invalid_credentials")
    await throttle.succeeded(attempt)
    await accounts.set_password(auth.pool, current.user.id, body.new_password)
    await request.app.state.invalidation.user(current.user.id)
    if current.session_id is None:
        return JSONResponse({"ok": True})
    return await _start_session(request, current.user)


routes = [
    Route("/api/auth/signup", signup, methods=["POST"]),
    Route("/api/auth/login", login, methods=["POST"]),
    Route("/api/auth/logout", logout, methods=["POST"]),
    Route("/api/auth/logout-everywhere", logout_everywhere, methods=["POST"]),
    Route("/api/auth/me", me, methods=["GET"]),
    Route("/api/auth/password", change_password, methods=["POST"]),
]
