"""Changes that per-replica caches must see at once, on every replica.

A change is applied to this replica's caches, then broadcast on the bus; `broadcast` returns
once every other live replica has applied it too, so the client's next request, wherever the
load balancer sends it, sees the change. A replica that missed messages (its bus connection
dropped) drops all its caches when it reconnects; the caches' short time limits are the last
fallback.

Messages on the `invalidate` channel, one line each:
    session <sha256 hex>   a session ended (logout, sign-in over an old cookie)
    user <uuid>            a user's sessions, keys, role, password, limits or state changed
    limits                 the default limits changed
    catalog                an admin changed a model's choices (enabled, display name)
    models <provider>      a provider's model list changed (pull, delete): refresh it
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any
from uuid import UUID

import structlog

from .bus import Bus, make_bus

log = structlog.get_logger("llmhub.invalidation")

CHANNEL = "invalidate"


class Invalidation:
    def __init__(self, state: Any, bus: Bus) -> None:
        self.state = state
        self.bus = bus

    async def start(self) -> None:
        self.bus.on_reconnect(self._drop_everything)
        await self.bus.subscribe(CHANNEL, self._received)

    # -- changes made here -----------------------------------------------------------------------

    async def session(self, id_hash: bytes) -> None:
        await self._apply_and_send(f"session {id_hash.hex()}")

    async def user(self, user_id: UUID) -> None:
        await self._apply_and_send(f"user {user_id}")

    async def limits(self) -> None:
        await self._apply_and_send("limits")

    async def catalog(self) -> None:
        await self._apply_and_send("catalog")

    async def models(self, provider: str) -> None:
        """This replica refreshed `provider` itself (after a pull or delete); others do now."""
        await self.bus.broadcast(CHANNEL, f"models {provider}")

    async def _apply_and_send(self, message: str) -> None:
        self._apply(message)
        await self.bus.broadcast(CHANNEL, message)

    # -- changes made elsewhere ------------------------------------------------------------------

    def _received(self, message: str) -> Awaitable[None] | None:
        return self._apply(message)

    def _apply(self, message: str) -> Awaitable[None] | None:
        kind, _, arg = message.partition(" ")
        state = self.state
        try:
            if kind == "session":
                state.auth.forget_session(bytes.fromhex(arg))
            elif kind == "user":
                state.auth.forget_user(UUID(arg))
            elif kind == "limits":
                state.default_limits.invalidate()
            elif kind == "catalog":
                state.catalog.invalidate()
            elif kind == "models":
                registry = self.state.registry
                if arg in registry.providers:
                    # Acknowledged once refreshed: the sender's next request sees the models.
                    refreshed: Awaitable[None] = registry.refresh_provider(arg)
                    return refreshed
            else:
                log.warning("unknown invalidation", message=message[:100])
        except ValueError:
            log.warning("malformed invalidation", message=message[:100])
        return None

    def _drop_everything(self) -> None:
        """Messages may have been missed while the bus was down."""
        self.state.auth.forget_all()
        self.state.default_limits.invalidate()
        self.state.catalog.invalidate()


async def announce(bus_kind: str, database_url: str, redis_url: str | None, *messages: str) -> None:
    """Broadcast invalidations from outside a server (the CLI changing accounts)."""
    bus = make_bus(bus_kind, database_url, redis_url)
    try:
        await bus.start()
        for message in messages:
            await bus.broadcast(CHANNEL, message)
    except Exception as exc:  # the servers' caches expire on their own within seconds
        log.warning("could not tell the servers", error=str(exc))
    finally:
        await bus.aclose()
