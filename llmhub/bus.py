"""The bus between replicas: small text messages on named channels, PostgreSQL or Redis.

    bus = PostgresBus(database_url)          # or RedisBus(redis_url)
    await bus.start()
    await bus.subscribe("invalidate", handler)   # handler(body: str), in the event loop
    bus.publish("invalidate", body)              # queued; sent in order, batched under load
    await bus.broadcast("invalidate", body)      # returns once every live replica has handled it

Delivery is at most once and in order per sender. A replica never receives its own messages.
What a replica may have missed while its connection was down it learns through `on_reconnect`
callbacks (drop caches, ask again), and `connected` is False while it is down.

PostgreSQL (`LISTEN/NOTIFY`): one connection per replica both listens and publishes, so each
replica adds one connection to the database. It holds an advisory lock while listening: the
replicas holding one are the ones `broadcast` waits for. A payload is limited to 8000 bytes;
longer messages travel in parts and are put back together on arrival.

Redis (pub/sub): one subscriber connection and one for publishing; `PUBLISH` reports how many
replicas received a message, which is how many acknowledgements `broadcast` waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import structlog

log = structlog.get_logger("llmhub.bus")

# Called in the event loop for each message. One that returns an awaitable is acknowledged to a
# `broadcast` once it completes; messages after it are not held up meanwhile.
Handler = Callable[[str], Awaitable[None] | None]

CHANNEL_PREFIX = "llmhub."
PRESENCE_LOCK_NAMESPACE = 0x6C62  # "lb": the advisory-lock class of listening replicas
PG_PAYLOAD_LIMIT = 7900  # bytes: PostgreSQL refuses payloads of 8000 bytes or more
MAX_QUEUED = 100_000  # messages waiting for a connection; the oldest are dropped beyond this
BROADCAST_TIMEOUT = 5.0  # a hung replica delays a logout this long at most
_RECONNECT_MAX_DELAY = 2.0


class BusUnavailable(Exception):
    """The bus connection is down (and being re-established)."""


class Bus(ABC):
    """One replica's end of the bus. Subclasses provide the transport."""

    def __init__(self) -> None:
        # Positive and below 2**31: PostgreSQL advisory-lock keys are int4.
        self.replica_key = secrets.randbelow(2**31 - 2) + 1
        self.replica = f"{self.replica_key:08x}"
        self.connected = False
        self._handlers: dict[str, list[Handler]] = {}
        self._reconnect_callbacks: list[Callable[[], None]] = []
        self._queue: deque[tuple[str, str]] = deque()
        self._queued = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._next_id = 0
        self._parts: dict[tuple[str, str], list[str]] = {}
        self._acks: dict[str, tuple[set[str], asyncio.Event]] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self._handling: set[asyncio.Task[None]] = set()
        self._closing = False

    # -- the interface ---------------------------------------------------------------------------

    async def start(self) -> None:
        await self._connect()
        self.connected = True
        self._tasks.append(asyncio.create_task(self._publish_forever(), name="bus-publisher"))

    async def aclose(self) -> None:
        """Send what is queued (briefly), then close."""
        if self.connected and self._queue:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self.flush()
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.connected = False
        await self._disconnect()

    async def subscribe(self, channel: str, handler: Handler) -> None:
        """Call `handler(body)` for every message on `channel`; listening once this returns."""
        handlers = self._handlers.setdefault(channel, [])
        handlers.append(handler)
        if len(handlers) == 1 and self.connected:
            await self._listen(channel)

    async def unsubscribe(self, channel: str, handler: Handler) -> None:
        handlers = self._handlers.get(channel, [])
        with contextlib.suppress(ValueError):
            handlers.remove(handler)
        if not handlers and self._handlers.pop(channel, None) is not None and self.connected:
            with contextlib.suppress(Exception):  # gone with the connection anyway
                await self._unlisten(channel)

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        """`callback()` after the connection came back: messages may have been missed."""
        self._reconnect_callbacks.append(callback)

    def publish(self, channel: str, body: str) -> None:
        """Queue a message for every other replica listening on `channel`."""
        self._enqueue(channel, self._header(self._new_id(), "-") + body)

    async def broadcast(self, channel: str, body: str, timeout: float = BROADCAST_TIMEOUT) -> bool:
        """Publish and wait until every other live replica has handled the message (its
        handlers have returned). False when some did not answer within `timeout`, or the bus is
        down: their caches' time limits are then the fallback."""
        if not self.connected:
            return False
        message_id = self._new_id()
        acked: set[str] = set()
        done = asyncio.Event()
        self._acks[message_id] = (acked, done)
        failures: tuple[type[BaseException], ...] = (
            TimeoutError,
            BusUnavailable,
            *self._transport_errors(),
        )
        try:
            async with asyncio.timeout(timeout):
                expected = await self._send_counted(
                    self._wire(channel), self._header(message_id, "a") + body
                )
                while len(acked) < expected:
                    await done.wait()
                    done.clear()
            return True
        except failures as exc:
            log.warning("broadcast not confirmed by every replica", channel=channel,
                        confirmed=len(acked), error=type(exc).__name__)  # fmt: skip
            return False
        finally:
            self._acks.pop(message_id, None)

    async def flush(self) -> None:
        """Wait until everything queued so far has been handed to the transport."""
        while self._queue or not self._idle.is_set():
            if not self.connected:
                raise BusUnavailable("the bus is reconnecting")
            self._queued.set()
            await self._idle.wait()
            await asyncio.sleep(0)  # lets the publisher pick up what was queued meanwhile

    # -- the transport, per backend --------------------------------------------------------------

    @abstractmethod
    async def _connect(self) -> None:
        """Connect, listen on the replica's own channel and every subscribed one."""

    @abstractmethod
    async def _disconnect(self) -> None: ...

    @abstractmethod
    async def _listen(self, channel: str) -> None: ...

    @abstractmethod
    async def _unlisten(self, channel: str) -> None: ...

    @abstractmethod
    async def _send(self, messages: list[tuple[str, str]]) -> None:
        """Send (wire channel, payload) pairs in order, in one round trip if it can."""

    @abstractmethod
    async def _send_counted(self, channel: str, payload: str) -> int:
        """Send one message; return how many other replicas will acknowledge it."""

    @abstractmethod
    def _transport_errors(self) -> tuple[type[BaseException], ...]: ...

    @abstractmethod
    def _split(self, payload: str) -> list[str]:
        """A payload in parts the transport can carry (PostgreSQL's limit), each with header."""

    # -- shared machinery ------------------------------------------------------------------------

    def _new_id(self) -> str:
        self._next_id += 1
        return f"{self._next_id:x}"

    def _header(self, message_id: str, flag: str) -> str:
        return f"{self.replica} {message_id} {flag} "

    def _wire(self, channel: str) -> str:
        return CHANNEL_PREFIX + channel

    def _direct(self, replica: str) -> str:
        return f"{CHANNEL_PREFIX}r.{replica}"

    def _enqueue(self, channel: str, payload: str) -> None:
        wire = self._wire(channel)
        for part in self._split(payload):
            self._queue.append((wire, part))
        while len(self._queue) > MAX_QUEUED:
            self._queue.popleft()  # receivers notice the gap (frames) or time out (caches)
        self._queued.set()

    async def _publish_forever(self) -> None:
        while True:
            await self._queued.wait()
            self._queued.clear()
            while self._queue and self.connected:
                self._idle.clear()
                batch = list(self._queue)
                self._queue.clear()
                try:
                    await self._send(batch)
                except self._transport_errors() as exc:
                    log.warning("bus send failed; reconnecting", error=str(exc))
                    self._queue.extendleft(reversed(batch))
                    self._lost()
                    break
            self._idle.set()

    def _lost(self) -> None:
        """The connection failed: reconnect in the background."""
        if self.connected and not self._closing:
            self.connected = False
            self._tasks.append(asyncio.create_task(self._reconnect(), name="bus-reconnect"))

    async def _reconnect(self) -> None:
        delay = 0.1
        while not self._closing:
            with contextlib.suppress(Exception):
                await self._disconnect()
            listened = set(self._handlers)
            failures: tuple[type[BaseException], ...] = (
                OSError,
                TimeoutError,
                *self._transport_errors(),
            )
            try:
                await self._connect()
            except failures as exc:
                log.warning("bus reconnect failed", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RECONNECT_MAX_DELAY)
                continue
            self._parts.clear()
            self.connected = True
            for channel in set(self._handlers) - listened:
                # Subscribed while we were connecting.
                with contextlib.suppress(*self._transport_errors()):
                    await self._listen(channel)
            log.info("bus reconnected")
            for callback in list(self._reconnect_callbacks):
                try:
                    callback()
                except Exception:
                    log.exception("bus reconnect callback failed")
            self._queued.set()
            return

    def _received(self, wire_channel: str, payload: str) -> None:
        """A payload arrived: put parts together, acknowledge, call the channel's handlers."""
        sender, message_id, flag, body = _parse(payload)
        if sender is None or sender == self.replica:
            return
        if flag == "k":  # an acknowledgement of one of our broadcasts
            waiting = self._acks.get(body)
            if waiting is not None:
                waiting[0].add(sender)
                waiting[1].set()
            return
        wants_ack, part = flag[:1] == "a", flag[1:]
        if part:
            index, _, total = part.partition("/")
            key = (sender, message_id)
            pieces = self._parts.setdefault(key, [])
            pieces.append(body)
            if index != total:
                return
            del self._parts[key]
            if len(pieces) != int(total):
                return  # a part was lost: drop the whole message
            body = "".join(pieces)
        channel = wire_channel.removeprefix(CHANNEL_PREFIX)
        pending: list[Awaitable[None]] = []
        for handler in list(self._handlers.get(channel, ())):
            try:
                result = handler(body)
            except Exception:
                log.exception("bus handler failed", channel=channel)
                continue
            if result is not None:
                pending.append(result)
        if pending:
            finish = self._finish(channel, pending, sender, message_id, wants_ack)
            task = asyncio.create_task(finish)
            self._handling.add(task)
            task.add_done_callback(self._handling.discard)
        elif wants_ack:
            self._ack(sender, message_id)

    async def _finish(
        self, channel: str, pending: list[Awaitable[None]], sender: str, message_id: str, ack: bool
    ) -> None:
        """Await what async handlers started; only then acknowledge."""
        for outcome in await asyncio.gather(*pending, return_exceptions=True):
            if isinstance(outcome, Exception):
                log.error("bus handler failed", channel=channel, error=repr(outcome))
        if ack:
            self._ack(sender, message_id)

    def _ack(self, sender: str, message_id: str) -> None:
        self._queue.append((self._direct(sender), self._header(self._new_id(), "k") + message_id))
        self._queued.set()


def _parse(payload: str) -> tuple[str | None, str, str, str]:
    fields = payload.split(" ", 3)
    if len(fields) != 4:
        return None, "", "", ""
    return fields[0], fields[1], fields[2], fields[3]


def split_utf8(text: str, limit: int) -> list[str]:
    """`text` in pieces of at most `limit` UTF-8 bytes, never inside a character."""
    data = text.encode()
    if len(data) <= limit:
        return [text]
    pieces = []
    start = 0
    while start < len(data):
        end = min(len(data), start + limit)
        while end < len(data) and (data[end] & 0xC0) == 0x80:  # a continuation byte
            end -= 1
        pieces.append(data[start:end].decode())
        start = end
    return pieces


class PostgresBus(Bus):
    def __init__(self, dsn: str, *, connect_timeout: float = 10.0) -> None:
        super().__init__()
        self.dsn = dsn
        self.connect_timeout = connect_timeout
        self._conn: asyncpg.Connection | None = None
        self._use = asyncio.Lock()  # one operation at a time on the connection

    def _transport_errors(self) -> tuple[type[BaseException], ...]:
        return (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)

    async def _connect(self) -> None:
        conn = await asyncpg.connect(
            self.dsn,
            timeout=self.connect_timeout,
            server_settings={"application_name": f"llmhub bus {self.replica}"},
        )
        try:
            for channel in [self._direct(self.replica), *map(self._wire, self._handlers)]:
                await conn.add_listener(channel, self._notified)
            # Listening first, then present: whoever sees the lock can count on our ack.
            await conn.execute(
                "SELECT pg_advisory_lock($1, $2)", PRESENCE_LOCK_NAMESPACE, self.replica_key
            )
        except BaseException:
            conn.terminate()
            raise
        conn.add_termination_listener(lambda _conn: self._lost())
        self._conn = conn

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                async with asyncio.timeout(2):
                    await conn.close()
            except Exception:
                conn.terminate()

    def _notified(self, _conn: Any, _pid: int, channel: str, payload: object) -> None:
        # asyncpg's listener type says `object`; NOTIFY payloads arrive as str.
        self._received(channel, str(payload))

    async def _listen(self, channel: str) -> None:
        async with self._use:
            assert self._conn is not None
            await self._conn.add_listener(self._wire(channel), self._notified)

    async def _unlisten(self, channel: str) -> None:
        async with self._use:
            if self._conn is not None:
                await self._conn.remove_listener(self._wire(channel), self._notified)

    async def _send(self, messages: list[tuple[str, str]]) -> None:
        channels, payloads = zip(*messages, strict=True)
        async with self._use:
            if self._conn is None:
                raise asyncpg.InterfaceError("the bus connection is closed")
            # One statement, one round trip; notifications keep the order they were sent in.
            await self._conn.execute(
                "SELECT pg_notify(c, p) FROM unnest($1::text[], $2::text[]) "
                "WITH ORDINALITY AS t(c, p, n) ORDER BY n",
                list(channels),
                list(payloads),
            )

    async def _send_counted(self, channel: str, payload: str) -> int:
        # Sent outside the queue: every queued message before it is sent first, for order.
        await self.flush()
        async with self._use:
            if self._conn is None:
                raise asyncpg.InterfaceError("the bus connection is closed")
            # Counted before sending: a replica that starts listening later has empty caches.
            others = await self._conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND classid = $1 AND objsubid = 2 AND objid <> $2 AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())",
                PRESENCE_LOCK_NAMESPACE,
                self.replica_key,
            )
            parts = self._split(payload)
            await self._conn.execute(
                "SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS t(p, n) "
                "ORDER BY n",
                channel,
                parts,
            )
        return int(others)

    def _split(self, payload: str) -> list[str]:
        if len(payload) * 4 <= PG_PAYLOAD_LIMIT or len(payload.encode()) <= PG_PAYLOAD_LIMIT:
            return [payload]
        sender, message_id, flag, body = _parse(payload)
        header = f"{sender} {message_id} {flag}"
        pieces = split_utf8(body, PG_PAYLOAD_LIMIT - len(header) - 16)
        total = len(pieces)
        return [f"{header}{i}/{total} {piece}" for i, piece in enumerate(pieces, 1)]


class RedisBus(Bus):
    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self._client: Any = None
        self._pubsub: Any = None
        self._subscribed: dict[str, asyncio.Future[None]] = {}

    def _transport_errors(self) -> tuple[type[BaseException], ...]:
        from redis.exceptions import RedisError

        return (RedisError, OSError)

    async def _connect(self) -> None:
        import redis.asyncio as redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # No silent retries: a lost connection must surface, so we know messages were missed.
        client = redis.Redis.from_url(
            self.url,
            socket_connect_timeout=10,
            retry=Retry(NoBackoff(), 0),
            client_name=f"llmhub-bus-{self.replica}",  # CLIENT LIST tells replicas apart
        )
        pubsub = client.pubsub(ignore_subscribe_messages=False)
        self._client, self._pubsub = client, pubsub
        try:
            channels = [self._direct(self.replica), *map(self._wire, self._handlers)]
            loop = asyncio.get_running_loop()
            futures = [self._subscribed.setdefault(c, loop.create_future()) for c in channels]
            await pubsub.subscribe(*channels)  # connects: only then may the reader read
            reader = asyncio.create_task(self._read_forever(pubsub), name="bus-reader")
            self._tasks.append(reader)
            async with asyncio.timeout(10):
                await asyncio.gather(*futures)
        except BaseException:
            await self._disconnect()
            raise

    async def _disconnect(self) -> None:
        client, pubsub = self._client, self._pubsub
        self._client = self._pubsub = None
        for future in self._subscribed.values():
            future.cancel()
        self._subscribed.clear()
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _subscribe_wire(self, channels: list[str]) -> None:
        loop = asyncio.get_running_loop()
        futures = [self._subscribed.setdefault(c, loop.create_future()) for c in channels]
        await self._pubsub.subscribe(*channels)
        async with asyncio.timeout(10):
            await asyncio.gather(*futures)

    async def _read_forever(self, pubsub: Any) -> None:
        errors = self._transport_errors()
        while True:
            try:
                message = await pubsub.get_message(timeout=30.0)
            except errors as exc:
                if pubsub is self._pubsub:
                    log.warning("bus connection lost; reconnecting", error=str(exc))
                    self._lost()
                return
            if message is None:
                continue
            kind = message["type"]
            channel = message["channel"].decode()
            if kind == "message":
                self._received(channel, message["data"].decode())
            elif kind == "subscribe":
                future = self._subscribed.get(channel)
                if future is not None and not future.done():
                    future.set_result(None)

    async def _listen(self, channel: str) -> None:
        await self._subscribe_wire([self._wire(channel)])

    async def _unlisten(self, channel: str) -> None:
        self._subscribed.pop(self._wire(channel), None)
        await self._pubsub.unsubscribe(self._wire(channel))

    async def _send(self, messages: list[tuple[str, str]]) -> None:
        if self._client is None:
            raise ConnectionError("the bus connection is closed")
        async with self._client.pipeline(transaction=False) as pipe:
            for channel, payload in messages:
                pipe.publish(channel, payload)
            await pipe.execute()

    async def _send_counted(self, channel: str, payload: str) -> int:
        await self.flush()
        if self._client is None:
            raise ConnectionError("the bus connection is closed")
        receivers = int(await self._client.publish(channel, payload))
        ours = channel.removeprefix(CHANNEL_PREFIX) in self._handlers
        return receivers - 1 if ours else receivers

    def _split(self, payload: str) -> list[str]:
        return [payload]  # Redis has no practical size limit


def make_bus(kind: str, database_url: str, redis_url: str | None) -> Bus:
    if kind == "redis":
        assert redis_url is not None
        return RedisBus(redis_url)
    return PostgresBus(database_url)
