"""A PostgreSQL server of the test's own (initdb + pg_ctl on a free port), to stop, freeze
(SIGSTOP) and restart under traffic without touching the shared one.

    async with private_postgres(tmp_dir) as pg:
        url = pg.url            # trust auth, database "postgres"
        await pg.stop(); await pg.start(); pg.freeze(); pg.thaw()
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from llmhub.migrations import migrate
from tests.net import free_port


def _bin(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
            return str(candidate)
        raise RuntimeError(f"{name} not found: PostgreSQL's server binaries are needed")
    return found


def _as_postgres() -> list[str]:
    """initdb and postgres refuse to run as root: run them as the `postgres` user then."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@dataclass
class PrivatePostgres:
    root: Path
    port: int

    @property
    def pgdata(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    async def _run(self, *args: str) -> None:
        process = await asyncio.create_subprocess_exec(
            *_as_postgres(),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {out.decode(errors='replace')}")

    async def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        await self._run(
            _bin("initdb"), "-D", str(self.pgdata), "-U", "postgres", "-A", "trust", "--no-sync"
        )

    async def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        await self._run(
            _bin("pg_ctl"), "start", "-w", "-D", str(self.pgdata), "-o", options,
            "-l", str(self.root / "log"),
        )  # fmt: skip

    async def stop(self) -> None:
        """A fast shutdown: sessions are ended, as when a managed database restarts."""
        self.thaw()
        await self._run(_bin("pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.pgdata))

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.pgdata / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _server_pids(self) -> list[int]:
        """The postmaster and every backend it forked."""
        root = self._postmaster_pid()
        if root is None:
            return []
        pids = [root]
        for status in Path("/proc").glob("[0-9]*/status"):
            with contextlib.suppress(OSError):
                fields = dict(
                    line.split(":\t", 1)
                    for line in status.read_text().splitlines()
                    if ":\t" in line
                )
                if fields.get("PPid", "").strip() == str(root):
                    pids.append(int(status.parent.name))
        return pids

    def freeze(self) -> None:
        """SIGSTOP the server and its backends: connections stay open and nothing answers."""
        for pid in self._server_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self._server_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


async def migrated(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def private_postgres(*, migrate_schema: bool = True) -> AsyncIterator[PrivatePostgres]:
    root = Path(tempfile.mkdtemp(prefix="llmhub-private-pg-"))
    os.chmod(root, 0o755)  # noqa: S103 - the postgres user must reach it
    server = PrivatePostgres(root, free_port())
    try:
        await server.init()
        await server.start()
        if migrate_schema:
            await migrated(server.url)
        yield server
    finally:
        with contextlib.suppress(Exception):
            if server._postmaster_pid() is not None:
                await server.stop()
        shutil.rmtree(root, ignore_errors=True)
