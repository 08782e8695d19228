"""Identities at OpenID providers and the load balancer, and how each user signs in."""

from __future__ import annotations

from uuid import UUID

from . import Db


async def user_id_for(db: Db, issuer: str, subject: str) -> UUID | None:
    user_id: UUID | None = await db.fetchval(
        "SELECT user_id FROM user_identities WHERE issuer = $1 AND subject = $2", issuer, subject
    )
    return user_id


async def link(
    db: Db, issuer: str, subject: str, user_id: UUID, provider: str, email: str | None
) -> None:
    """Record (or refresh) the identity; it stays with the user it was first linked to."""
    await db.execute(
        "INSERT INTO user_identities (issuer, subject, user_id, provider, email) "
        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (issuer, subject) DO UPDATE "
        "SET provider = excluded.provider, email = excluded.email, last_login_at = now()",
        issuer,
        subject,
        user_id,
        provider,
        email,
    )


async def sign_in_methods(db: Db) -> dict[UUID, list[str]]:
    """For every user: 'password' when they have one, then each provider they signed in with."""
    rows = await db.fetch(
        "SELECT u.id, u.password_hash IS NOT NULL AS has_password, "
        "coalesce(array_agg(DISTINCT i.provider) FILTER (WHERE i.provider IS NOT NULL), "
        "'{}') AS providers "
        "FROM users u LEFT JOIN user_identities i ON i.user_id = u.id GROUP BY u.id"
    )
    return {
        row["id"]: (["password"] if row["has_password"] else []) + sorted(row["providers"])
        for row in rows
    }


async def session_sign_in(db: Db, id_hash: bytes) -> str | None:
    """How the session was started: None (a password), 'oidc:<provider>' or 'alb'."""
    sign_in: str | None = await db.fetchval(
        "SELECT sign_in FROM sessions WHERE id_hash = $1", id_hash
    )
    return sign_in
