"""Single sign-on: from a verified external identity to an llmhub account, and back out.

Accounts are found by identity (issuer + subject). A new identity is linked to an existing
account only through a verified email; otherwise an account is made as `signup_policy` allows
(open: user, approval: pending, closed: none). When a provider maps groups to roles, the role
is re-applied at every sign-in, and a changed role ends the user's other sessions as an admin's
change does. The last working admin is never demoted by a group change (it is logged instead).
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
import asyncpg
import structlog
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import Response

from . import accounts
from .auth.alb import HEADER as ALB_HEADER
from .auth.alb import AlbVerifier
from .auth.claims import (
    ExternalIdentity,
    SignInError,
    SignInRefused,
    check_email_domain,
    role_from_groups,
)
from .auth.identity import Principal
from .auth.oidc import OidcProvider
from .auth.sessions import secure_cookies, start_session
from .config import ClaimMapping, Settings
from .errors import BadRequest, Conflict, Forbidden
from .repo import accounts as repo
from .repo import identities
from .repo.accounts import User

log = structlog.get_logger("llmhub.sso")

HTTP_TIMEOUT = aiohttp.ClientTimeout(total=15, connect=5)
_EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"


@dataclass
class Sso:
    settings: Settings
    pool: asyncpg.Pool
    app_state: State  # its `invalidation` tells every replica about a changed role
    http: aiohttp.ClientSession
    providers: dict[str, OidcProvider]
    alb: AlbVerifier | None

    @classmethod
    def create(cls, settings: Settings, pool: asyncpg.Pool, app_state: State) -> Sso:
        http = aiohttp.ClientSession(timeout=HTTP_TIMEOUT, raise_for_status=False)
        providers = {p.name: OidcProvider(p, http) for p in settings.oidc.providers}
        alb = AlbVerifier(settings.auth.alb, http) if settings.auth.alb else None
        return cls(settings, pool, app_state, http, providers, alb)

    async def aclose(self) -> None:
        await self.http.close()

    # -- signing in ------------------------------------------------------------------------------

    async def account_for(self, identity: ExternalIdentity, mapping: ClaimMapping) -> User:
        """The account this identity signs in to, created or re-roled as the rules say;
        `SignInRefused` when it may not sign in."""
        check_email_domain(mapping, identity)
        user_id = await identities.user_id_for(self.pool, identity.issuer, identity.subject)
        role = role_from_groups(mapping, identity.groups)
        if user_id is None:
            user = await self._link_or_create(identity, role)
        else:
            found = await repo.user_by_id(self.pool, user_id)
            assert found is not None  # identities are deleted with their user
            user = found[0]
        if user.disabled:
            raise SignInRefused("this account is disabled", code="account_disabled")
        if role is not None and role != user.role:
            user = await self._apply_role(user, role)
        await identities.link(
            self.pool, identity.issuer, identity.subject, user.id, identity.provider, identity.email
        )
        if user.role == "pending":
            raise SignInRefused(
                "this account is waiting for an admin's approval", code="account_pending"
            )
        await repo.record_login(self.pool, user.id)
        return user

    async def _link_or_create(self, identity: ExternalIdentity, role: str | None) -> User:
        if identity.email is None:
            raise SignInRefused(
                "the identity provider did not share your email address", code="email_missing"
            )
        try:
            email = accounts.check_email(identity.email)
        except BadRequest:
            raise SignInRefused(
                "the identity provider sent an invalid email address", code="email_invalid"
            ) from None
        found = await repo.user_by_email(self.pool, email)
        if found is not None:
            if not identity.email_verified:
                raise SignInRefused(
                    "an account with this email exists, but the provider has not verified "
                    "the address, so it cannot be linked; ask an admin",
                    code="email_not_verified",
                )
            log.info("sso identity linked", provider=identity.provider, user_id=str(found[0].id))
            return found[0]
        policy = self.settings.signup_policy
        new_role = role or ("pending" if policy == "approval" else "user")
        try:
            async with self.pool.acquire() as conn:
                user = await repo.create_user(
                    conn,
                    email,
                    identity.display_name,
                    None,  # no password: this account signs in through its provider
                    new_role,
                    first_only=policy == "closed",
                )
        except Forbidden:
            raise SignInRefused(
                "sign-up is closed; ask an admin to create your account first",
                code="signup_closed",
            ) from None
        except Conflict:  # the same email signed up at the same moment
            raise SignInRefused("try signing in again", code="email_taken") from None
        log.info(
            "sso account created", provider=identity.provider, user_id=str(user.id), role=user.role
        )
        return user

    async def _apply_role(self, user: User, role: str) -> User:
        try:
            updated = await accounts.update_user(self.pool, user.id, role=role)
        except Conflict:
            log.warning(
                "groups would demote the last admin; role kept", user_id=str(user.id), role=role
            )
            return user
        await self.app_state.invalidation.user(user.id)
        log.info("role from groups applied", user_id=str(user.id), before=user.role, after=role)
        return updated

    # -- the load balancer's header --------------------------------------------------------------

    async def alb_principal(self, request: Request) -> Principal | None:
        """Signs in from `x-amzn-oidc-data` when there is no llmhub session: a new session is
        started (the endpoint hands its cookie to the browser). An invalid header is a 401."""
        token = request.headers.get(ALB_HEADER)
        if self.alb is None or token is None:
            return None
        try:
            identity = await self.alb.verify(token.strip())
        except SignInError as exc:
            log.warning(
                "alb identity refused", reason=exc.message, code=exc.code, path=request.url.path
            )
            raise
        assert self.settings.auth.alb is not None
        user = await self.account_for(identity, self.settings.auth.alb)
        session_id = await start_session(request, user, identity.sign_in)
        request.state.started_session = session_id
        return Principal(user, session_id=session_id)

    # -- signing out -----------------------------------------------------------------------------

    async def sign_out_redirect(self, request: Request, sign_in: str | None) -> str | None:
        """Where the browser goes after its llmhub session ended: the identity provider's
        sign-out page, when there is one (else it would sign straight back in)."""
        alb = self.settings.auth.alb
        if alb is not None and alb.logout_url:
            return alb.logout_url
        if sign_in and sign_in.startswith("oidc:"):
            provider = self.providers.get(sign_in.removeprefix("oidc:"))
            if provider is not None:
                return await provider.end_session_url(public_base(request) + "/signin")
        return None

    def expire_alb_cookies(self, request: Request, response: Response) -> None:
        """AWS: to sign out, "set the expiration time of the authentication session cookie
        to -1" (it is sharded into `-0`, `-1`, ... when large)."""
        alb = self.settings.auth.alb
        if alb is None:
            return
        for name in request.cookies:
            if name.startswith(alb.session_cookie):
                response.set_cookie(
                    name, "", max_age=-1, expires=_EPOCH, path="/", secure=True, httponly=True
                )


def public_base(request: Request) -> str:
    """The URL users reach llmhub at: configured, else this request's scheme and host."""
    configured = request.app.state.settings.oidc.public_url
    return configured or str(request.base_url).rstrip("/")


__all__ = ["Sso", "public_base", "secure_cookies"]
