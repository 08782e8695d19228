"""What an identity provider said about a user, read the same way for OIDC and the load balancer.

Providers disagree on shapes: `email_verified` is a boolean in most ID tokens but the string
"true" in Cognito's userinfo (and so in the load balancer's header); Keycloak sends group paths
("/admins"); some claims are nested ("realm_access.roles"). All of that is settled here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from providers.errors import LLMHubError

from ..config import ClaimMapping


class SignInError(LLMHubError):
    """The identity could not be established (bad token, provider down): nobody is signed in."""

    status = 401
    type = "authentication_error"
    code = "sso_failed"


class SignInRefused(LLMHubError):
    """The identity is genuine but llmhub's rules keep it out (domain, policy, disabled)."""

    status = 403
    type = "permission_error"
    code = "sso_refused"


@dataclass(frozen=True, slots=True)
class ExternalIdentity:
    provider: str  # the configured provider's name, or "alb"
    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    display_name: str
    groups: tuple[str, ...] | None  # None when the provider sent no groups claim at all
    hosted_domain: str | None = None  # Google Workspace's `hd`

    @property
    def sign_in(self) -> str:
        """How sessions started by this identity are labelled."""
        return "alb" if self.provider == "alb" else f"oidc:{self.provider}"


def claim(claims: Mapping[str, Any], name: str) -> Any:
    """The claim `name`, or a nested one by dotted path when no claim has that exact name
    (names like "cognito:groups" or URIs with dots are looked up as they are first)."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def is_true(value: Any) -> bool:
    """`true` or the string "true" (Cognito's userinfo sends booleans as strings)."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def groups_from(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(str(item) for item in value if isinstance(item, str | int))
    return ()


def identity_from_claims(
    claims: Mapping[str, Any], mapping: ClaimMapping, *, provider: str, issuer: str
) -> ExternalIdentity:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise SignInError("the identity provider sent no subject", code="sso_invalid_token")
    email = claim(claims, mapping.email_claim)
    email = email.strip() if isinstance(email, str) and email.strip() else None
    # Entra ID never sends email_verified; its optional `xms_edov` says the domain owner
    # verified the address.
    verified = email is not None and (
        mapping.trust_email
        or is_true(claims.get("email_verified"))
        or is_true(claims.get("xms_edov"))
    )
    name = claim(claims, mapping.name_claim)
    hosted_domain = claims.get("hd")
    return ExternalIdentity(
        provider=provider,
        issuer=issuer,
        subject=subject,
        email=email,
        email_verified=verified,
        display_name=name.strip()[:200] if isinstance(name, str) else "",
        groups=groups_from(claim(claims, mapping.groups_claim)),
        hosted_domain=hosted_domain if isinstance(hosted_domain, str) else None,
    )


def _group_key(name: str) -> str:
    # Keycloak's group mapper sends full paths ("/admins") unless told otherwise.
    return name.strip().lstrip("/").casefold()


def role_from_groups(mapping: ClaimMapping, groups: tuple[str, ...] | None) -> str | None:
    """The role the groups give, or None when roles do not come from groups."""
    if not mapping.roles_from_groups:
        return None
    held = {_group_key(g) for g in groups or ()}
    if held & {_group_key(g) for g in mapping.admin_groups}:
        return "admin"
    if not mapping.user_groups or held & {_group_key(g) for g in mapping.user_groups}:
        return "user"
    return "pending"


def check_email_domain(mapping: ClaimMapping, identity: ExternalIdentity) -> None:
    allowed = {d.strip().lower().lstrip("@") for d in mapping.allowed_email_domains}
    if not allowed:
        return
    domain = identity.email.rsplit("@", 1)[-1].lower() if identity.email else None
    if not identity.email_verified or domain not in allowed:
        raise SignInRefused(
            "your email address is not from a domain allowed to sign in here",
            code="email_domain_not_allowed",
        )
    # Google: the `hd` claim is the Workspace domain the account belongs to; an address in
    # the domain on a consumer account (no `hd`) is not the organisation's.
    if identity.issuer in GOOGLE_ISSUERS and (identity.hosted_domain or "").lower() not in allowed:
        raise SignInRefused(
            "your Google account is not part of an allowed Workspace domain",
            code="email_domain_not_allowed",
        )


GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")
