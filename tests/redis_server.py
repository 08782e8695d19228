"""A private redis-server on a free loopback port for tests that need Redis (never a shared one)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator

import pytest

from tests.net import free_port


@contextlib.asynccontextmanager
async def private_redis() -> AsyncIterator[str]:
    """Yields `redis://127.0.0.1:PORT`; the server is stopped afterwards. Skips without one."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="llmhub-test-redis-") as data:
        process = await asyncio.create_subprocess_exec(
            binary,
            *("--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
            *("--dir", data),
            stdout=asyncio.subprocess.DEVNULL,
        )
        try:
            async with asyncio.timeout(10):
                while True:
                    try:
                        _, writer = await asyncio.open_connection("127.0.0.1", port)
                    except OSError:
                        await asyncio.sleep(0.02)
                        continue
                    writer.close()
                    break
            yield f"redis://127.0.0.1:{port}"
        finally:
            if process.returncode is None:
                process.terminate()
            await process.wait()
