"""Single sign-on routes: the providers to offer, and the OpenID Connect redirect and callback.

    GET /api/auth/providers                  what the sign-in screen offers
    GET /api/auth/oidc/{provider}/login      302 to the provider (state, nonce, PKCE)
    GET /api/auth/oidc/{provider}/callback   back from it: a session, then 302 into the app

Between the two redirects the browser holds a signed, 10-minute, HttpOnly cookie with the
state, nonce and PKCE verifier: the callback must come back to the browser that left (a
login started elsewhere cannot be completed here), and the state is single-use because the
cookie is cleared and the provider refuses a code twice. A failed sign-in lands on the sign-in
screen with `?sso_error=<code>`, and is logged with the reason.
"""

from __future__ import annotations

import hmac
from typing import Any

import structlog
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ..auth import sessions
from ..auth.claims import SignInError, SignInRefused
from ..auth.oidc import OidcProvider, PendingLogin
from ..errors import NotFound
from ..sso import Sso, public_base
from ._endpoint import endpoint

log = structlog.get_logger("llmhub.sso")

LOGIN_COOKIE = "llmhub_oidc_login"
LOGIN_COOKIE_PATH = "/api/auth/oidc/"
LOGIN_MAX_AGE = 600


def _serializer(request: Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(request.app.state.auth.secret_key, salt="llmhub.oidc-login")


def _provider(request: Request) -> OidcProvider:
    sso: Sso = request.app.state.sso
    provider = sso.providers.get(request.path_params["provider"])
    if provider is None:
        raise NotFound("no such sign-in provider", code="provider_not_found")
    return provider


def _redirect_uri(request: Request, provider: OidcProvider) -> str:
    return f"{public_base(request)}/api/auth/oidc/{provider.name}/callback"


def _safe_return_path(value: str | None) -> str:
    """Only a path on this site: never `//host`, a scheme, or a backslash trick."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ord(c) < 0x20 for c in value):
        return "/"
    return value[:2000]


@endpoint("public")
async def list_providers(request: Request) -> Response:
    settings = request.app.state.settings
    sso: Sso = request.app.state.sso
    return JSONResponse(
        {
            "password_login": settings.auth.password_login,
            "signup_policy": settings.signup_policy,
            "alb": sso.alb is not None,
            "providers": [
                {
                    "name": p.name,
                    "label": p.settings.label,
                    "login_url": f"/api/auth/oidc/{p.name}/login",
                }
                for p in sso.providers.values()
            ],
        }
    )


@endpoint("public")
async def oidc_login(request: Request) -> Response:
    provider = _provider(request)
    login = PendingLogin.new()
    try:
        url = await provider.authorization_url(_redirect_uri(request, provider), login)
    except SignInError as exc:
        return _failed(request, provider.name, exc)
    response = RedirectResponse(url, status_code=302)
    value = _serializer(request).dumps(
        {
            "p": provider.name,
            "s": login.state,
            "n": login.nonce,
            "v": login.code_verifier,
            "r": _safe_return_path(request.query_params.get("return_to")),
        }
    )
    response.set_cookie(
        LOGIN_COOKIE,
        value,
        max_age=LOGIN_MAX_AGE,
        path=LOGIN_COOKIE_PATH,
        httponly=True,
        samesite="lax",  # sent on the provider's top-level redirect back to us
        secure=sessions.secure_cookies(request),
    )
    return response


@endpoint("public")
async def oidc_callback(request: Request) -> Response:
    provider = _provider(request)
    try:
        pending, return_to = _pending_login(request, provider)
        error = request.query_params.get("error")
        if error:
            description = request.query_params.get("error_description", "")
            raise SignInError(
                f"the provider answered {error[:100]}: {description[:300]}",
                code="sso_denied" if error == "access_denied" else "sso_provider_error",
            )
        code = request.query_params.get("code")
        if not code:
            raise SignInError("the provider sent no code", code="sso_invalid_response")
        identity = await provider.finish(code, _redirect_uri(request, provider), pending)
        sso: Sso = request.app.state.sso
        user = await sso.account_for(identity, provider.settings)
    except (SignInError, SignInRefused) as exc:
        return _failed(request, provider.name, exc)
    session_id = await sessions.start_session(request, user, identity.sign_in)
    log.info("sso sign-in", provider=provider.name, user_id=str(user.id))
    response = RedirectResponse(return_to, status_code=302)
    sessions.set_session_cookie(request, response, session_id)
    _clear_login_cookie(request, response)
    return response


def _pending_login(request: Request, provider: OidcProvider) -> tuple[PendingLogin, str]:
    raw = request.cookies.get(LOGIN_COOKIE)
    if not raw:
        raise SignInError(
            "the sign-in was not started in this browser, or took too long",
            code="sso_state_mismatch",
        )
    try:
        data: dict[str, Any] = _serializer(request).loads(raw, max_age=LOGIN_MAX_AGE)
    except BadSignature:
        raise SignInError(
            "the sign-in took too long; try again", code="sso_state_mismatch"
        ) from None
    state = request.query_params.get("state", "")
    if data.get("p") != provider.name or not hmac.compare_digest(str(data.get("s")), state):
        raise SignInError("the sign-in state does not match", code="sso_state_mismatch")
    pending = PendingLogin(state=data["s"], nonce=data["n"], code_verifier=data["v"])
    return pending, _safe_return_path(data.get("r"))


def _failed(request: Request, provider: str, exc: SignInError | SignInRefused) -> Response:
    log.warning("sso sign-in failed", provider=provider, code=exc.code, reason=exc.message)
    response = RedirectResponse(f"/signin?sso_error={exc.code}", status_code=302)
    _clear_login_cookie(request, response)
    return response


def _clear_login_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        LOGIN_COOKIE,
        path=LOGIN_COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=sessions.secure_cookies(request),
    )


routes = [
    Route("/api/auth/providers", list_providers, methods=["GET"]),
    Route("/api/auth/oidc/{provider}/login", oidc_login, methods=["GET"]),
    Route("/api/auth/oidc/{provider}/callback", oidc_callback, methods=["GET"]),
]
