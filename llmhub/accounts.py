"""Account operations shared by the HTTP API and the CLI. Validation of shape happens at the
edges; the rules (first user is admin, last admin stays, revocation on change) live here."""

from __future__ import annotations

import re
from datetime import datetime
from uuid import UUID

import asyncpg

from .auth import passwords, tokens
from .errors import BadRequest, Conflict, NotFound
from .repo import accounts as repo
from .repo.accounts import ApiKey, User

# No control characters either: emails are printed by `llmhub users list` in a terminal.
_EMAIL_PART = r"[^@\s\x00-\x1f\x7f-\x9f]+"
_EMAIL = re.compile(rf"{_EMAIL_PART}@{_EMAIL_PART}\.{_EMAIL_PART}")
ROLES = ("admin", "user", "pending")


def check_email(email: str) -> str:
    email = email.strip()
    if len(email) > 320 or not _EMAIL.fullmatch(email):
        raise BadRequest("email: not a valid email address", code="validation_error")
    return email


def check_password(password: str) -> str:
    if not passwords.MIN_LENGTH <= len(password) <= passwords.MAX_LENGTH:
        raise BadRequest(
            f"password: must be {passwords.MIN_LENGTH} to {passwords.MAX_LENGTH} characters",
            code="weak_password",
        )
    return password


async def create_user(
    pool: asyncpg.Pool,
    email: str,
    password: str,
    *,
    display_name: str = "",
    role: str = "user",
    first_only: bool = False,
) -> User:
    """`first_only`: create the account only if it is the first (sign-up closed), deciding that
    under the same lock as the first user's admin role, so racing sign-ups cannot both get in."""
    email = check_email(email)
    password_hash = await passwords.hash_password(check_password(password))
    async with pool.acquire() as conn:
        return await repo.create_user(
            conn, email, display_name.strip(), password_hash, role, first_only=first_only
        )


async def find_user(pool: asyncpg.Pool, email: str) -> User:
    found = await repo.user_by_email(pool, email)
    if found is None:
        raise NotFound(f"no user with email {email}", code="user_not_found")
    return found[0]


async def set_password(pool: asyncpg.Pool, user_id: UUID, password: str) -> None:
    """A new password signs the user out of every session."""
    password_hash = await passwords.hash_password(check_password(password))
    async with pool.acquire() as conn, conn.transaction():
        if await repo.update_user(conn, user_id, password_hash=password_hash) is None:
            raise NotFound("user not found", code="user_not_found")
        await repo.delete_user_sessions(conn, user_id)


async def update_user(
    pool: asyncpg.Pool,
    user_id: UUID,
    *,
    role: str | None = None,
    disabled: bool | None = None,
    display_name: str | None = None,
    limits: dict[str, int] | None = None,
) -> User:
    """Role changes and disabling revoke the user's sessions; the last admin cannot be lost."""
    changes = {
        name: value
        for name, value in (
            ("role", role),
            ("disabled", disabled),
            ("display_name", display_name),
            ("limits", limits),
        )
        if value is not None
    }
    if role is not None and role not in ROLES:
        raise BadRequest(f"role: must be one of {', '.join(ROLES)}", code="validation_error")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('llmhub.admins'))")
        found = await repo.user_by_id(conn, user_id)
        if found is None:
            raise NotFound("user not found", code="user_not_found")
        before = found[0]
        if not changes:
            return before
        # Only a working admin counts: demoting or deleting a disabled one loses nobody.
        loses_admin = (
            before.is_admin
            and not before.disabled
            and ((role is not None and role != "admin") or disabled is True)
        )
        if loses_admin and await repo.count_admins(conn) <= 1:
            raise Conflict("the last admin cannot be demoted or disabled", code="last_admin")
        after = await repo.update_user(conn, user_id, **changes)
        assert after is not None
        if after.role != before.role or (after.disabled and not before.disabled):
            await repo.delete_user_sessions(conn, user_id)
        return after


async def delete_user(pool: asyncpg.Pool, user_id: UUID) -> None:
    """Deletes the user with their chats, messages, sessions and keys (usage rows stay)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('llmhub.admins'))")
        found = await repo.user_by_id(conn, user_id)
        if found is None:
            raise NotFound("user not found", code="user_not_found")
        working_admin = found[0].is_admin and not found[0].disabled
        if working_admin and await repo.count_admins(conn) <= 1:
            raise Conflict("the last admin cannot be deleted", code="last_admin")
        await repo.delete_user(conn, user_id)


async def create_api_key(
    pool: asyncpg.Pool,
    user_id: UUID,
    *,
    name: str = "",
    expires_at: datetime | None = None,
    allowed_models: list[str] | None = None,
    limits: dict[str, int] | None = None,
) -> tuple[str, ApiKey]:
    """Returns the key itself (shown once, never stored) and its stored record."""
    key = tokens.new_api_key()
    record = await repo.create_api_key(
        pool,
        user_id,
        name,
        key[: tokens.API_KEY_DISPLAY_CHARS],
        tokens.digest(key),
        expires_at,
        allowed_models,
        limits or {},
    )
    return key, record
