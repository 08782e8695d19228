"""Turning a request into a `Principal`: a signed session cookie or a Bearer API key."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit
from uuid import UUID

import asyncpg
from itsdangerous import BadSignature, Signer
from starlette.requests import Request

from ..errors import Forbidden, Unauthorized
from ..repo import accounts as repo
from ..repo.accounts import ApiKey, SessionRow, User
from . import tokens

SESSION_COOKIE = "llmhub_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Sessions and API keys are re-read at least this often. Logout and revocation drop the entries
# at once, on every replica (over the bus, see llmhub/invalidation.py); the time limit is only the
# fallback for a replica that missed the message.
SESSION_CACHE_SECONDS = 1.0
_TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Principal:
    user: User
    session_id: str | None = None
    api_key: ApiKey | None = None


class Authenticator:
    def __init__(self, pool: asyncpg.Pool, secret_key: str, idle_timeout: float) -> None:
        self.pool = pool
        self.secret_key = secret_key
        self.idle_timeout = idle_timeout
        self._signer = Signer(secret_key, salt="llmhub.session")
        self._sessions: dict[bytes, tuple[float, SessionRow]] = {}
        self._keys: dict[bytes, tuple[float, ApiKey, User]] = {}
        # Bumped by every forget: a row read before a forget is not cached after it.
        self._epoch = 0
        # Consulted when a request has no live session: signs in from a trusted source (the
        # load balancer's identity header) and returns the new session's principal.
        self.fallback: Callable[[Request], Awaitable[Principal | None]] | None = None
        # What the caches' SESSION_CACHE_SECONDS are measured on (tests move it).
        self.clock: Callable[[], float] = time.monotonic

    # -- cookies ---------------------------------------------------------------------------------

    def cookie_value(self, session_id: str) -> str:
        return self._signer.sign(session_id).decode()

    def session_id_from(self, request: Request) -> str | None:
        value = request.cookies.get(SESSION_COOKIE)
        if not value:
            return None
        try:
            return self._signer.unsign(value).decode()
        except BadSignature:
            return None

    def csrf_token(self, session_id: str) -> str:
        return tokens.csrf_token(self.secret_key, session_id)

    # -- authentication --------------------------------------------------------------------------

    async def authenticate(self, request: Request) -> Principal | None:
        authorization = request.headers.get("authorization")
        if authorization is not None:
            return await self._from_api_key(authorization)
        session_id = self.session_id_from(request)
        session = await self._session(tokens.digest(session_id)) if session_id else None
        if session is not None:
            return Principal(session.user, session_id=session_id)
        return await self.fallback(request) if self.fallback else None

    async def _from_api_key(self, authorization: str) -> Principal:
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.startswith(tokens.API_KEY_PREFIX):
            raise Unauthorized("expected 'Authorization: Bearer lh_...'", code="invalid_api_key")
        key_hash = tokens.digest(key.strip())
        now = self.clock()
        cached = self._keys.get(key_hash)
        if cached and cached[0] > now:
            return Principal(cached[2], api_key=cached[1])
        epoch = self._epoch
        found = await repo.api_key_by_hash(self.pool, key_hash)
        if found is None:
            self._keys.pop(key_hash, None)
            raise Unauthorized("API key is invalid, expired or revoked", code="invalid_api_key")
        api_key, user = found
        await repo.touch_api_key(self.pool, api_key.id)
        if len(self._keys) > 10_000:
            self._keys.clear()
        if epoch == self._epoch:
            self._keys[key_hash] = (now + SESSION_CACHE_SECONDS, api_key, user)
        return Principal(user, api_key=api_key)

    async def _session(self, id_hash: bytes) -> SessionRow | None:
        now = self.clock()
        cached = self._sessions.get(id_hash)
        if cached and cached[0] > now:
            return cached[1]
        epoch = self._epoch
        session = await repo.session_by_hash(self.pool, id_hash, self.idle_timeout)
        if session is None:
            self._sessions.pop(id_hash, None)
            return None
        if datetime.now(UTC) - session.last_seen_at > _TOUCH_EVERY:
            await repo.touch_session(self.pool, id_hash)
        if len(self._sessions) > 10_000:
            self._sessions.clear()
        if epoch == self._epoch:
            self._sessions[id_hash] = (now + SESSION_CACHE_SECONDS, session)
        return session

    # These act on this replica only: llmhub.invalidation applies them everywhere.

    def forget_session(self, id_hash: bytes) -> None:
        self._epoch += 1
        self._sessions.pop(id_hash, None)

    def forget_all(self) -> None:
        self._epoch += 1
        self._sessions.clear()
        self._keys.clear()

    def forget_user(self, user_id: UUID) -> None:
        """Drop everything cached for a user: their changes take effect on the next request."""
        self._epoch += 1
        for id_hash, (_, session) in list(self._sessions.items()):
            if session.user.id == user_id:
                del self._sessions[id_hash]
        for key_hash, (_, _, user) in list(self._keys.items()):
            if user.id == user_id:
                del self._keys[key_hash]

    # -- authorisation ---------------------------------------------------------------------------

    async def require(self, request: Request, *, admin: bool = False) -> Principal:
        principal = await self.authenticate(request)
        if principal is None:
            raise Unauthorized("sign in or send an API key")
        user = principal.user
        if user.disabled:
            raise Forbidden("this account is disabled", code="account_disabled")
        if user.role == "pending":
            raise Forbidden(
                "this account is waiting for an admin's approval", code="account_pending"
            )
        if principal.session_id is not None and request.method not in SAFE_METHODS:
            self.check_csrf(request, principal.session_id)
        if admin and not user.is_admin:
            raise Forbidden("admins only", code="admin_required")
        return principal

    def check_csrf(self, request: Request, session_id: str) -> None:
        check_same_origin(request)
        given = request.headers.get(CSRF_HEADER, "")
        if not tokens.tokens_match(given, self.csrf_token(session_id)):
            raise Forbidden("missing or invalid X-CSRF-Token header", code="csrf_failed")


def check_same_origin(request: Request) -> None:
    """A browser's Origin (or Referer) must name this site when it sends one."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:
        return
    default_port = {"http": 80, "https": 443}
    try:
        parts = urlsplit(source)
        ours = request.url
        same = (
            parts.scheme == ours.scheme
            and parts.hostname == ours.hostname
            and (parts.port or default_port.get(parts.scheme))
            == (ours.port or default_port.get(ours.scheme))
        )
    except ValueError:  # a malformed port or IPv6 literal, in their URL or in our Host header
        same = False
    if not same:
        raise Forbidden("cross-origin request refused", code="csrf_failed")
