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
from .bus import make_bus
from .catalog import Catalog
from .config import Settings, load_or_create_secret_key
from .errors import EXCEPTION_HANDLERS
from .invalidation import Invalidation
from .metrics import Metrics
from .middleware import (
    BodySizeLimitMiddleware,
    SecurityHeadersMiddleware,
    UnexpectedErrorMiddleware,
)
from .migrations import migrate
from .observability import AccessLogMiddleware
from .routes import (
    admin,
    api_auth,
    api_chats,
    api_generations,
    api_keys,
    api_search,
    api_usage,
    health,
    models,
    openai,
    sso,
)
from .routes import metrics as metrics_routes
from .static import SpaStaticFiles

log = structlog.get_logger("llmhub")


def create_app(settings: Settings) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            database_url = await _open_database(app, settings, stack)
            bus = make_bus(settings.bus_kind, database_url, settings.redis_url)
            await bus.start()
            stack.push_async_callback(bus.aclose)  # after the generations: they publish last
            app.state.bus = bus
            _set_up_auth(app, settings)
            stack.push_async_callback(app.state.sso.aclose)
            stack.push_async_callback(_cancel, _start_sweeper(app.state.pool))
            from providers.registry import build_registry

            registry = build_registry(settings)
            stack.push_async_callback(registry.aclose)
            app.state.registry = registry
            from .loaded_models import LoadedModels

            app.state.loaded_models = LoadedModels(registry, interval=settings.health_interval)
            app.state.catalog = Catalog(app.state.pool, registry, app.state.loaded_models)
            registry.on_models = app.state.catalog.record_seen
            app.state.invalidation = Invalidation(app.state, bus)
            await app.state.invalidation.start()
            registry.start()
            from .health import Health

            app.state.health = Health(app.state.pool, registry, interval=settings.health_interval)
            await app.state.health.start()
            stack.push_async_callback(app.state.health.aclose)
            from .generations import GenerationManager

            generations = GenerationManager(
                app.state,
                shutdown_timeout=settings.shutdown_timeout,
                lease_seconds=settings.generation_lease,
            )
            from .relay import Relay

            relay = Relay(app.state, bus, generations)
            await relay.start()
            stack.push_async_callback(relay.aclose)  # after the generations have finished
            app.state.relay = relay
            await generations.start()
            stack.push_async_callback(generations.shutdown)
            app.state.generations = generations
            _start_observers(app, settings, stack)
            log.info("ready", mode=settings.mode, providers=sorted(registry.providers))
            yield

    metrics = Metrics()
    app = Starlette(
        routes=[
            *health.routes,
            *metrics_routes.routes,
            *api_auth.routes,
            *sso.routes,
            *api_keys.routes,
            *admin.routes,
            *models.routes,
            *api_chats.routes,
            *api_generations.routes,
            *api_search.routes,
            *api_usage.routes,
            *openai.routes,
            Mount("/", SpaStaticFiles()),
        ],
        middleware=[
            Middleware(AccessLogMiddleware, metrics=metrics),
            Middleware(SecurityHeadersMiddleware, hsts=settings.secure_cookies),
            Middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes),
            Middleware(UnexpectedErrorMiddleware),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    return app


async def _open_database(app: Starlette, settings: Settings, stack: Any) -> str:
    """Open the pool (and the embedded server when configured); returns the database URL."""
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
        acquire_timeout=settings.db_acquire_timeout,
        statement_timeout=settings.db_statement_timeout,
    )
    stack.push_async_callback(pool.close)
    app.state.pool = pool
    if settings.migrate_on_start:
        async with db.migration_connection(url, settings.db_connect_timeout) as conn:
            await migrate(conn, progress=_log_migration)
    return url


def _set_up_auth(app: Starlette, settings: Settings) -> None:
    from .auth.identity import Authenticator
    from .auth.limits import (
        DefaultLimits,
        LoginThrottle,
        ModelCallLimiter,
        SignupLimiter,
        make_storage,
    )

    pool = app.state.pool
    storage = make_storage(settings.redis_url)
    app.state.auth = Authenticator(
        pool, load_or_create_secret_key(settings), settings.session_idle_timeout
    )
    app.state.limiter = ModelCallLimiter(storage)
    app.state.login_throttle = LoginThrottle(storage, settings.login_failures_before_backoff)
    app.state.signup_limiter = SignupLimiter(storage, settings.signups_per_hour_per_address)
    app.state.default_limits = DefaultLimits(pool, settings.limits.model_dump())
    from .sso import Sso

    app.state.sso = Sso.create(settings, pool, app.state)
    if app.state.sso.alb is not None:
        app.state.auth.fallback = app.state.sso.alb_principal


def _start_observers(app: Starlette, settings: Settings, stack: Any) -> None:
    """What /metrics and the catalog mirror: Ollama's loaded models, polled in the background,
    and the event-loop lag probe."""
    app.state.loaded_models.start()
    stack.push_async_callback(app.state.loaded_models.aclose)
    app.state.metrics.bind(app.state)
    stack.push_async_callback(app.state.metrics.aclose)


SESSION_SWEEP_EVERY = 3600.0


def _start_sweeper(pool: Any) -> asyncio.Task[None]:
    """Expired sessions are refused on read; this only keeps the table small. Every replica
    asks often; one of them sweeps, once per `SESSION_SWEEP_EVERY`."""
    from .repo import jobs
    from .repo.accounts import delete_expired_sessions

    async def sweep() -> None:
        while True:
            try:
                if await jobs.claim(pool, "session-sweep", SESSION_SWEEP_EVERY):
                    await delete_expired_sessions(pool)
            except Exception as exc:  # a failed sweep is retried next round
                log.warning("session sweep failed", error=str(exc))
            await asyncio.sleep(SESSION_SWEEP_EVERY / 12)

    return asyncio.create_task(sweep(), name="session-sweeper")


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _log_migration(name: str, phase: str, ms: float | None) -> None:
    if phase == "applied":
        log.info("migration applied", migration=name, duration_ms=round(ms or 0, 1))
    else:
        log.info("applying migration", migration=name)
