"""Starting and ending browser sessions: the row, and the cookie that carries its id.

Every way of signing in (password, OpenID provider, the load balancer's header) ends here, so
a session is the same thing however it began: revocable, role-checked, CSRF-protected.
"""

from __future__ import annotations

import ipaddress

from starlette.requests import Request
from starlette.responses import Response

from ..repo import accounts as repo
from ..repo.accounts import User
from . import tokens
from .identity import SESSION_COOKIE, Authenticator


def client_ip(request: Request) -> str | None:
    """The client's address for throttling and the session list, or None if it is not an IP.

    Behind the load balancer (aws mode) it is the last X-Forwarded-For entry: the one the
    load balancer appended. Entries before it are whatever the client chose to send.
    """
    host = request.client.host if request.client else None
    if request.app.state.settings.trust_proxy_headers:
        forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
        host = forwarded.rsplit(",", 1)[-1].strip() or host
    try:
        return str(ipaddress.ip_address(host or ""))
    except ValueError:
        return None


async def start_session(request: Request, user: User, sign_in: str | None = None) -> str:
    """A brand-new session id on every sign-in: a planted cookie is never promoted (fixation).
    Returns the new session id; `set_session_cookie` hands it to the browser."""
    auth: Authenticator = request.app.state.auth
    settings = request.app.state.settings
    old = auth.session_id_from(request)
    if old is not None:
        await repo.delete_session(auth.pool, tokens.digest(old))
        await request.app.state.invalidation.session(tokens.digest(old))
    session_id = tokens.new_session_id()
    await repo.create_session(
        auth.pool,
        tokens.digest(session_id),
        user.id,
        settings.session_max_age,
        request.headers.get("user-agent", "")[:500] or None,
        client_ip(request),
        sign_in,
    )
    return session_id


def secure_cookies(request: Request) -> bool:
    return bool(request.app.state.settings.secure_cookies or request.url.scheme == "https")


def set_session_cookie(request: Request, response: Response, session_id: str) -> None:
    auth: Authenticator = request.app.state.auth
    response.set_cookie(
        SESSION_COOKIE,
        auth.cookie_value(session_id),
        max_age=int(request.app.state.settings.session_max_age),
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
    )


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=secure_cookies(request)
    )
