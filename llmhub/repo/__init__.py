"""All SQL lives here. Functions take a pool or a connection (`Db`) and return plain types."""

from __future__ import annotations

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A connection is either one we opened or one a pool lent us (`async with pool.acquire()`).
Conn = asyncpg.Connection | PoolConnectionProxy
Db = asyncpg.Pool | Conn
