"""Run `llmhub serve` as a real subprocess and wait for it to announce its URL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

ANNOUNCEMENT = "llmhub serving on "


@dataclass
class ServeProcess:
    process: asyncio.subprocess.Process
    url: str = ""
    stderr_lines: list[str] = field(default_factory=list)
    _stderr_task: asyncio.Task[None] | None = None

    @property
    def stderr(self) -> str:
        return "".join(self.stderr_lines)

    async def stop(self, timeout: float = 30) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), timeout)
        if self._stderr_task:
            await self._stderr_task
        return code


async def _collect(stream: asyncio.StreamReader, into: list[str]) -> None:
    async for line in stream:
        into.append(line.decode(errors="replace"))


@contextlib.asynccontextmanager
async def serve(
    *args: str, env: dict[str, str] | None = None, startup_timeout: float = 60
) -> AsyncIterator[ServeProcess]:
    """`llmhub serve --port 0 ARGS`; yields once it is listening, SIGTERMs it on exit."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "llmhub",
        "serve",
        "--port",
        "0",
        "--log-format",
        "json",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    served = ServeProcess(process)
    assert process.stdout is not None and process.stderr is not None
    served._stderr_task = asyncio.create_task(_collect(process.stderr, served.stderr_lines))
    try:
        async with asyncio.timeout(startup_timeout):
            async for raw in process.stdout:
                line = raw.decode()
                if line.startswith(ANNOUNCEMENT):
                    served.url = line.removeprefix(ANNOUNCEMENT).strip()
                    break
        if not served.url:
            code = await process.wait()
            await served._stderr_task
            raise AssertionError(f"llmhub serve exited {code} before serving:\n{served.stderr}")
        yield served
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
