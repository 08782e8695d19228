"""`create_app(settings)`: routes, middleware and the lifespan that owns pool and providers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount

from . import db
from .config import Settings, load_or_create_secret_key
from .errors import EXCEPTION_HANDLERS
from .middleware import BodySizeLimitMiddleware, SecurityHeadersMiddleware
from .migrations import migrate
from .observability import AccessLogMiddleware
from .routes import health
from .static import SpaStaticFiles

log = structlog.get_logger("llmhub")


def create_app(settings: Settings) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            await _open_database(app, settings, stack)
            app.state.secret_key = load_or_create_secret_key(settings)
            from providers.registry import build_registry

            registry = build_registry(settings)
            stack.push_async_callback(registry.aclose)
            registry.start()
            app.state.registry = registry
            log.info("ready", mode=settings.mode, providers=sorted(registry.providers))
            yield

    app = Starlette(
        routes=[*health.routes, Mount("/", SpaStaticFiles())],
        middleware=[
            Middleware(AccessLogMiddleware),
            Middleware(SecurityHeadersMiddleware),
            Middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes),
        ],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=lifespan,
    )
    app.state.settings = settings
    return app


async def _open_database(app: Starlette, settings: Settings, stack: Any) -> None:
    url = settings.database_url
    if url is None:
        embedded = db.EmbeddedPostgres(settings.data_path / "postgres")
        log.info("starting embedded PostgreSQL", pgdata=str(embedded.pgdata))
        url = await asyncio.to_thread(embedded.start)
        stack.callback(embedded.stop)
    pool = await db.create_pool(
        url,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        connect_timeout=settings.db_connect_timeout,
    )
    stack.push_async_callback(pool.close)
    app.state.pool = pool
    if settings.migrate_on_start:
        async with pool.acquire() as conn:
            await migrate(conn, progress=_log_migration)


def _log_migration(name: str, phase: str, ms: float | None) -> None:
    if phase == "applied":
        log.info("migration applied", migration=name, duration_ms=round(ms or 0, 1))
    else:
        log.info("applying migration", migration=name)
