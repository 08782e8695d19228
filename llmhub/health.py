"""Readiness as it is, kept current in the background: the database is probed every
`health_interval` seconds here, the providers by the registry. `/health/ready` reads this
state, so a load balancer probing every second costs no database or upstream call."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from providers.registry import Registry

from .db import is_reachable

log = structlog.get_logger("llmhub.health")


@dataclass(slots=True, frozen=True)
class DatabaseHealth:
    ok: bool
    latency_ms: float | None = None
    detail: str | None = None


class Health:
    def __init__(self, pool: asyncpg.Pool, registry: Registry, *, interval: float) -> None:
        self.pool = pool
        self.registry = registry
        self.interval = interval
        self.database = DatabaseHealth(ok=False, detail="not checked yet")
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.probe_database()
        self._task = asyncio.create_task(self._probe_forever(), name="database-probe")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def probe_database(self) -> None:
        started = time.perf_counter()
        ok, detail = await is_reachable(self.pool)
        latency = round((time.perf_counter() - started) * 1000, 1) if ok else None
        if ok != self.database.ok:
            if ok:
                log.info("database is back", latency_ms=latency)
            else:
                log.warning("database is unreachable", error=detail)
        self.database = DatabaseHealth(ok=ok, latency_ms=latency, detail=detail)

    async def _probe_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.probe_database()
            except Exception as exc:  # never let the probe die: readiness would freeze
                log.exception("database probe failed")
                self.database = DatabaseHealth(ok=False, detail=type(exc).__name__)

    def report(self, mode: str, *, details: bool) -> tuple[int, dict[str, Any]]:
        """The readiness status code and body. Details (errors naming internal hosts, and
        when they happened) are for admins only."""
        last_errors = self.registry.last_errors() if details else {}
        providers: dict[str, dict[str, Any]] = {}
        for name, h in self.registry.health().items():
            entry: dict[str, Any] = {
                "ok": h.ok,
                "latency_ms": h.latency_ms,
                "detail": h.detail if details else None,
            }
            if details:
                error, at = last_errors.get(name, (None, None))
                entry["last_error"] = error
                entry["last_error_at"] = _iso(at) if at is not None else None
            providers[name] = entry
        db = self.database
        if not db.ok:
            status = "unavailable"
        elif all(p["ok"] for p in providers.values()):
            status = "ok"
        else:
            status = "degraded"
        body = {
            "status": status,
            "mode": mode,
            "database": {"ok": db.ok, "detail": db.detail if details else None},
            "providers": providers,
        }
        return (200 if db.ok else 503), body


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
