"""argon2id hashing. Hashing is deliberately slow, so it runs off the event loop."""

from __future__ import annotations

import asyncio
import functools
import os

from argon2 import Parameters, PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # argon2id with argon2-cffi's current recommended parameters

# Test suites hash thousands of passwords: with this set to "cheapest" the `llmhub` command
# hashes with argon2's cheapest parameters (see `use_parameters`); aws mode refuses to start.
TEST_HASHING_VARIABLE = "LLMHUB_TEST_PASSWORD_HASHING"

MIN_LENGTH = 8
MAX_LENGTH = 1024


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the account does not exist, so a login's timing does not reveal
    it. Made on first use: hashing is slow on purpose, and imports should not be."""
    return _hasher.hash("not a real password")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(stored_hash: str | None, password: str) -> bool:
    def verify() -> bool:
        try:
            return (
                _hasher.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
            )
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


def use_parameters(parameters: Parameters) -> None:
    """Hash with `parameters` from now on; hashes made with others count as outdated (and are
    upgraded at the next sign-in). For test suites only, with `argon2.profiles.CHEAPEST`: a
    server never weakens its own hashing."""
    global _hasher
    _hasher = PasswordHasher.from_parameters(parameters)
    _dummy_hash.cache_clear()


def cheap_hashing_requested() -> bool:
    """Whether the environment asks for test-suite hashing (`TEST_HASHING_VARIABLE`)."""
    return os.environ.get(TEST_HASHING_VARIABLE) == "cheapest"


def needs_rehash(stored_hash: str) -> bool:
    """True when the hash was made with other parameters than today's."""
    return _hasher.check_needs_rehash(stored_hash)
