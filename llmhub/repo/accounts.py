"""Users, sessions and API keys. Password and key hashes never leave this module in a `User`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from ..errors import Conflict, Forbidden
from . import Conn, Db

_USER_FIELDS = (
    "id",
    "email",
    "display_name",
    "role",
    "disabled",
    "limits",
    "created_at",
    "last_login_at",
)
_USER_COLUMNS = ", ".join(f"u.{name}" for name in _USER_FIELDS)
# The same columns, renamed so they can sit beside another table's `id` in one row.
_USER_COLUMNS_PREFIXED = ", ".join(f"u.{name} AS u_{name}" for name in _USER_FIELDS)


@dataclass(frozen=True, slots=True)
class User:
    id: UUID
    email: str
    display_name: str
    role: str
    disabled: bool
    limits: dict[str, int] = field(default_factory=dict)
    created_at: datetime | None = None
    last_login_at: datetime | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def public(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "email": self.email,
            "display_name": self.display_name,
            "role": self.role,
            "disabled": self.disabled,
            "limits": self.limits,
            "created_at": _iso(self.created_at),
            "last_login_at": _iso(self.last_login_at),
        }


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: UUID
    user_id: UUID
    name: str
    prefix: str
    allowed_models: list[str] | None
    limits: dict[str, int]
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime

    def public(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "prefix": self.prefix,
            "allowed_models": self.allowed_models,
            "limits": self.limits,
            "expires_at": _iso(self.expires_at),
            "last_used_at": _iso(self.last_used_at),
            "revoked_at": _iso(self.revoked_at),
            "created_at": _iso(self.created_at),
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _user(row: asyncpg.Record, prefix: str = "") -> User:
    return User(*(row[prefix + name] for name in _USER_FIELDS))


def _key(row: asyncpg.Record) -> ApiKey:
    return ApiKey(
        *(
            row[name]
            for name in (
                "id",
                "user_id",
                "name",
                "prefix",
                "allowed_models",
                "limits",
                "expires_at",
                "last_used_at",
                "revoked_at",
                "created_at",
            )
        )
    )


# -- users ---------------------------------------------------------------------------------------


async def create_user(
    conn: Conn,
    email: str,
    display_name: str,
    password_hash: str | None,
    role: str,
    *,
    first_only: bool = False,
) -> User:
    """Insert a user; the first user ever becomes admin whatever `role` says. With `first_only`,
    anyone but the first is refused (sign-up closed)."""
    async with conn.transaction():
        # Serialise signups so two racing first users cannot both become admin.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('llmhub.signup'))")
        first = not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users)")
        if first_only and not first:
            raise Forbidden("sign-up is closed; ask an admin for an account", code="signup_closed")
        try:
            row = await conn.fetchrow(
                f"INSERT INTO users AS u (email, display_name, password_hash, role) "
                f"VALUES ($1, $2, $3, $4) RETURNING {_USER_COLUMNS}",
                email,
                display_name,
                password_hash,
                "admin" if first else role,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(
                "an account with this email already exists", code="email_taken"
            ) from None
    assert row is not None  # INSERT ... RETURNING always returns the row it made
    return _user(row)


async def user_by_email(db: Db, email: str) -> tuple[User, str | None] | None:
    row = await db.fetchrow(
        f"SELECT {_USER_COLUMNS}, u.password_hash FROM users u WHERE lower(u.email) = lower($1)",
        email,
    )
    return (_user(row), row["password_hash"]) if row else None


async def user_by_id(db: Db, user_id: UUID) -> tuple[User, str | None] | None:
    row = await db.fetchrow(
        f"SELECT {_USER_COLUMNS}, u.password_hash FROM users u WHERE u.id = $1", user_id
    )
    return (_user(row), row["password_hash"]) if row else None


async def list_users(db: Db, role: str | None = None) -> list[User]:
    rows = await db.fetch(
        f"SELECT {_USER_COLUMNS} FROM users u WHERE $1::text IS NULL OR u.role = $1 "
        "ORDER BY u.created_at, u.id",
        role,
    )
    return [_user(r) for r in rows]


_UPDATABLE = {"display_name", "role", "disabled", "limits", "password_hash"}


async def update_user(db: Db, user_id: UUID, **changes: Any) -> User | None:
    assert changes and set(changes) <= _UPDATABLE, changes
    assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(changes, start=2))
    row = await db.fetchrow(
        f"UPDATE users u SET {assignments} WHERE u.id = $1 RETURNING {_USER_COLUMNS}",
        user_id,
        *changes.values(),
    )
    return _user(row) if row else None


async def count_admins(db: Db) -> int:
    admins: int = await db.fetchval(
        "SELECT count(*) FROM users WHERE role = 'admin' AND NOT disabled"
    )
    return admins


async def delete_user(db: Db, user_id: UUID) -> bool:
    return await db.execute("DELETE FROM users WHERE id = $1", user_id) == "DELETE 1"


async def record_login(db: Db, user_id: UUID) -> None:
    await db.execute("UPDATE users SET last_login_at = now() WHERE id = $1", user_id)


# -- sessions ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionRow:
    user: User
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


async def create_session(
    db: Db,
    id_hash: bytes,
    user_id: UUID,
    max_age: float,
    user_agent: str | None,
    ip: str | None,
    sign_in: str | None = None,
) -> None:
    """`sign_in`: None for a password, else 'oidc:<provider>' or 'alb'."""
    await db.execute(
        "INSERT INTO sessions (id_hash, user_id, expires_at, user_agent, ip, sign_in) "
        "VALUES ($1, $2, now() + make_interval(secs => $3), $4, $5::inet, $6)",
        id_hash,
        user_id,
        max_age,
        user_agent,
        ip,
        sign_in,
    )


async def session_by_hash(db: Db, id_hash: bytes, idle_timeout: float) -> SessionRow | None:
    """The live session and its user; expired (idle or absolute) sessions are not returned."""
    row = await db.fetchrow(
        f"SELECT {_USER_COLUMNS}, s.created_at AS s_created, s.last_seen_at, s.expires_at "
        "FROM sessions s JOIN users u ON u.id = s.user_id "
        "WHERE s.id_hash = $1 AND s.expires_at > now() "
        "AND s.last_seen_at > now() - make_interval(secs => $2)",
        id_hash,
        idle_timeout,
    )
    if row is None:
        return None
    return SessionRow(_user(row), row["s_created"], row["last_seen_at"], row["expires_at"])


async def touch_session(db: Db, id_hash: bytes) -> None:
    await db.execute("UPDATE sessions SET last_seen_at = now() WHERE id_hash = $1", id_hash)


async def delete_session(db: Db, id_hash: bytes) -> None:
    await db.execute("DELETE FROM sessions WHERE id_hash = $1", id_hash)


async def delete_user_sessions(db: Db, user_id: UUID, keep: bytes | None = None) -> int:
    result = await db.execute(
        "DELETE FROM sessions WHERE user_id = $1 AND ($2::bytea IS NULL OR id_hash <> $2)",
        user_id,
        keep,
    )
    return int(result.split()[-1])


async def delete_expired_sessions(db: Db) -> int:
    result = await db.execute("DELETE FROM sessions WHERE expires_at <= now()")
    return int(result.split()[-1])


# -- API keys ------------------------------------------------------------------------------------

_KEY_COLUMNS = (
    "k.id, k.user_id, k.name, k.prefix, k.allowed_models, k.limits, k.expires_at, "
    "k.last_used_at, k.revoked_at, k.created_at"
)


async def create_api_key(
    db: Db,
    user_id: UUID,
    name: str,
    prefix: str,
    key_hash: bytes,
    expires_at: datetime | None,
    allowed_models: list[str] | None,
    limits: dict[str, int],
) -> ApiKey:
    row = await db.fetchrow(
        "INSERT INTO api_keys AS k "
        "(user_id, name, prefix, key_hash, expires_at, allowed_models, limits) "
        f"VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_KEY_COLUMNS}",
        user_id,
        name,
        prefix,
        key_hash,
        expires_at,
        allowed_models,
        limits,
    )
    assert row is not None  # INSERT ... RETURNING always returns the row it made
    return _key(row)


async def list_api_keys(db: Db, user_id: UUID) -> list[ApiKey]:
    rows = await db.fetch(
        f"SELECT {_KEY_COLUMNS} FROM api_keys k WHERE k.user_id = $1 "
        "ORDER BY k.created_at DESC, k.id",
        user_id,
    )
    return [_key(r) for r in rows]


async def api_key_by_hash(db: Db, key_hash: bytes) -> tuple[ApiKey, User] | None:
    """A usable key (not revoked, not expired) and its owner."""
    row = await db.fetchrow(
        f"SELECT {_KEY_COLUMNS}, {_USER_COLUMNS_PREFIXED} "
        "FROM api_keys k JOIN users u ON u.id = k.user_id "
        "WHERE k.key_hash = $1 AND k.revoked_at IS NULL "
        "AND (k.expires_at IS NULL OR k.expires_at > now())",
        key_hash,
    )
    if row is None:
        return None
    return _key(row), _user(row, "u_")


async def revoke_api_key(db: Db, user_id: UUID, key_id: UUID) -> ApiKey | None:
    row = await db.fetchrow(
        "UPDATE api_keys k SET revoked_at = coalesce(revoked_at, now()) "
        f"WHERE k.id = $1 AND k.user_id = $2 RETURNING {_KEY_COLUMNS}",
        key_id,
        user_id,
    )
    return _key(row) if row else None


async def touch_api_key(db: Db, key_id: UUID) -> None:
    """last_used_at at minute resolution: one write a minute per key, not one per request."""
    await db.execute(
        "UPDATE api_keys SET last_used_at = now() WHERE id = $1 "
        "AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        key_id,
    )


# -- app settings --------------------------------------------------------------------------------


async def get_setting(db: Db, key: str) -> Any:
    return await db.fetchval("SELECT value FROM app_settings WHERE key = $1", key)


async def put_setting(db: Db, key: str, value: Any) -> None:
    await db.execute(
        "INSERT INTO app_settings (key, value) VALUES ($1, $2) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()",
        key,
        value,
    )
