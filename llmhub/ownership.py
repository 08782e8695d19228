"""Who runs an answer: each process holds a lease it renews, not a lock on one connection.

A process registers a random owner key, stamps its `streaming` rows with it and renews the
lease every third of `generation_lease` seconds, from whichever pooled connection is free. A
sweep (at start, then periodically, on every replica) interrupts `streaming` rows whose
owner's lease has run out. So:

- a lost connection or a PostgreSQL restart costs nothing: the lease counts from the later of
  the last renewal and the server's start, and the next renewal (on any connection) keeps it;
- an owner that was away longer than its lease and was swept re-takes its key on return and
  puts the answers it is still running back to `streaming` (the final save is authoritative);
- a process that crashed is noticed within one lease, or at once by a process on the same
  machine (same boot and pid namespace) that sees its pid is gone;
- a replica sweeps only after its own renewals have succeeded for a whole lease: after an
  outage that every replica shared, the others get their lease's worth of time to renew.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import structlog

from .repo import owners

log = structlog.get_logger("llmhub.ownership")


def machine_identity() -> str | None:
    """Processes with the same identity see each other's pids: same boot, same pid namespace."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return f"{socket.gethostname()}/{boot}/{namespace}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


class OwnerLease:
    def __init__(
        self,
        pool: asyncpg.Pool,
        lease_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = pool
        self.lease_seconds = lease_seconds
        self.key = 0
        self.pid = os.getpid()
        # Without a checkable identity, nobody retires our lease early and we retire no one's.
        self.host = machine_identity() or f"unknown/{secrets.token_hex(8)}"
        self._clock = clock
        self._healthy_since: float | None = None

    @property
    def renew_interval(self) -> float:
        return self.lease_seconds / 3

    async def acquire(self) -> None:
        while not await owners.register(
            self.pool, key := secrets.randbelow(2**31 - 1) + 1, self.host, self.pid,
            self.lease_seconds,
        ):  # fmt: skip
            pass
        self.key = key
        self._healthy_since = self._clock()

    async def renew(self) -> bool:
        """Renew; True when the lease had been retired meanwhile (our answers need reclaiming).
        A failure is raised, and this process stops sweeping others until it is steady again."""
        try:
            retired = await owners.renew(
                self.pool, self.key, self.host, self.pid, self.lease_seconds
            )
        except BaseException:
            self._healthy_since = None
            raise
        if self._healthy_since is None:
            self._healthy_since = self._clock()
        if retired:
            log.warning("generation lease had lapsed and was re-taken", owner=self.key)
        return retired

    @property
    def steady(self) -> bool:
        """Renewed without a failure for a whole lease: safe to judge other owners' leases."""
        since = self._healthy_since
        return since is not None and self._clock() - since >= self.lease_seconds

    async def retire_dead_neighbours(self) -> int:
        gone = [
            key
            for key, pid in await owners.neighbours(self.pool, self.host, self.key)
            if pid == self.pid or not pid_alive(pid)  # our own pid: an earlier incarnation
        ]
        if gone:
            await owners.retire(self.pool, gone)
        return len(gone)

    async def release(self) -> None:
        await owners.release(self.pool, self.key)
