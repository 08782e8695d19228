"""The real `python -m llmhub` in a subprocess: `serve` (waits for it to announce its URL) and
`run_llmhub` for any other command. Every test that runs the CLI goes through these."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

ANNOUNCEMENT = "llmhub serving on "


def llmhub_command(*args: str) -> list[str]:
    """The command line of `llmhub ARGS`, run by this interpreter (the test's virtualenv)."""
    return [sys.executable, "-m", "llmhub", *args]


@dataclass(frozen=True)
class Ran:
    """A finished `llmhub` command: its exit code and what it printed."""

    returncode: int
    stdout: str
    stderr: str


async def run_llmhub(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 60
) -> Ran:
    """Runs `llmhub ARGS` to completion (extra environment in `env`, text on stdin)."""
    process = await asyncio.create_subprocess_exec(
        *llmhub_command(*args),
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    try:
        out, err = await asyncio.wait_for(
            process.communicate(stdin.encode() if stdin is not None else None), timeout
        )
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


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
        *llmhub_command("serve", "--port", "0", "--log-format", "json", *args),
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
