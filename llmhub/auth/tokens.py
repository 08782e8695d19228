"""Random secrets and how they are stored: only hashes reach the database."""

from __future__ import annotations

import hashlib
import hmac
import secrets

API_KEY_PREFIX = "lh_"
API_KEY_DISPLAY_CHARS = 10  # "lh_" and the first 7 random characters identify a key in lists


def new_session_id() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def digest(secret: str) -> bytes:
    """SHA-256: the secrets are 256-bit random, so a fast hash is enough (no guessing to slow)."""
    return hashlib.sha256(secret.encode()).digest()


def csrf_token(secret_key: str, session_id: str) -> str:
    """A token tied to one session: valid for it alone, and never stored."""
    return hmac.new(secret_key.encode(), b"csrf:" + session_id.encode(), "sha256").hexdigest()


def tokens_match(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
