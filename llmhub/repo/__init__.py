"""All SQL lives here. Functions take a pool or a connection (`Db`) and return plain types."""

from __future__ import annotations

import asyncpg

Db = asyncpg.Pool | asyncpg.Connection
