"""Answers visible from every replica: follow, reattach to and stop an answer that another
replica runs, over the bus. No sticky sessions.

The owner (the replica running the answer) keeps its frames, as ever. A replica asked for an
answer it does not run looks at the database: while the answer is `streaming`, it listens on
the answer's channel (`gen.<id>`) and asks the owner for it; the owner sends every frame so
far, then each new batch as it comes, until the `end`. This replica's copy (`Relayed`) serves
any number of its clients, each from its own Last-Event-ID, as the owner's own log does.
Frames carry the owner's sequence numbers: the copy takes each one once, in order, and asks
again from where it is when it sees a gap (a lost message, a reconnected bus).

A stop that reaches another replica is broadcast; the owner stops the answer and acknowledges
once its final state is saved, so the stop's response carries the saved answer.

An owner that died sends nothing more. A copy that has heard nothing for WATCH_INTERVAL looks
at the database: once the sweep (any replica's, within a lease) has marked the answer
`interrupted`, its clients get the `snapshot` and `end` a finished answer gives, and if the
copy holds more of the answer than the owner last saved, that text is saved first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any
from uuid import UUID

import structlog

from providers.base import Usage

from .bus import Bus
from .generations import (
    FINISH_BUDGET,
    INTERRUPTED_BY_CRASH,
    KEEPALIVE_INTERVAL,
    Generation,
    GenerationManager,
    sse_frame,
    usage_json,
)
from .repo import chats as repo
from .repo import relayed as relayed_repo
from .repo.chats import Message

log = structlog.get_logger("llmhub.relay")

CONTROL = "gen.ctl"
WATCH_INTERVAL = 2.0  # a copy quiet this long checks the database
ASK_AGAIN_AFTER = 0.5  # at most this often, a copy with a gap asks the owner again
RETAIN_RELAYED = 60.0  # a finished copy stays replayable this long
STOP_TIMEOUT = FINISH_BUDGET + 5.0  # the owner saves the final state before it acknowledges
_FRAME_ID = re.compile(r"id: (\d+)\nevent: (\w+)\n")


def channel(generation_id: UUID) -> str:
    return f"gen.{generation_id.hex}"


def end_event(message: Message) -> dict[str, Any]:
    """The `end` event of a finished answer, from what the database holds."""
    public = message.public()
    return {
        "message_id": public["id"],
        "status": message.status,
        "stop_reason": message.stop_reason,
        "usage": public["usage"] or usage_json(Usage(exact=False)),
        "ttft_ms": message.ttft_ms,
        "duration_ms": message.duration_ms,
        "error": message.error,
    }


class Relayed:
    """This replica's copy of an answer that another replica runs."""

    def __init__(self, message: Message, user_id: UUID) -> None:
        self.id = message.id
        self.chat_id = message.chat_id
        self.user_id = user_id
        self.frames: list[bytes] = []
        self.done = False
        self.finished_at = 0.0
        self.heard_at = time.monotonic()
        self.asked_at = float("-inf")
        self._texts: list[tuple[str, str]] = []  # (event, data) of delta/reasoning frames
        self._waiters: list[asyncio.Future[None]] = []

    def add(self, text: str) -> bool:
        """Take the frames in a batch from the owner; False when one is missing before them."""
        self.heard_at = time.monotonic()
        in_order = True
        for raw in text.split("\n\n"):
            found = _FRAME_ID.match(raw)
            if found is None or self.done:
                continue  # a comment, or after the end
            seq, event = int(found.group(1)), found.group(2)
            if seq <= len(self.frames):
                continue  # had it already (the owner sent a backlog again)
            if seq > len(self.frames) + 1:
                in_order = False
                break
            self.frames.append(raw.encode() + b"\n\n")
            if event in ("delta", "reasoning"):
                self._texts.append((event, raw[found.end() :]))
            elif event == "end":
                self._close()
        self._wake()
        return in_order

    def text(self) -> tuple[str, str]:
        """The answer's content and reasoning as far as this copy has it."""
        parts: dict[str, list[str]] = {"delta": [], "reasoning": []}
        for event, data in self._texts:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                parts[event].append(json.loads(data.removeprefix("data: "))["text"])
        return "".join(parts["delta"]), "".join(parts["reasoning"])

    def end_from(self, message: Message, end: dict[str, Any]) -> None:
        """The owner is gone: what the database holds, as a finished answer's reattach gives."""
        if self.done:
            return
        seq = len(self.frames)
        self.frames.append(sse_frame(seq + 1, "snapshot", {"message": message.public()}))
        self.frames.append(sse_frame(seq + 2, "end", end))
        self._close()
        self._wake()

    def abandon(self) -> None:
        """The answer is gone (its chat was deleted): end the clients' streams."""
        if not self.done:
            self._close()
            self._wake()

    def _close(self) -> None:
        self.done = True
        self.finished_at = time.monotonic()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def follow(
        self, after: int = 0, keepalive: float = KEEPALIVE_INTERVAL
    ) -> AsyncIterator[bytes]:
        """Frames with seq > `after`, then live ones until the end; idle gaps get comments."""
        sent = max(0, after)
        while True:
            if sent < len(self.frames):
                chunk = b"".join(self.frames[sent:])
                sent = len(self.frames)
                yield chunk
                continue
            if self.done:
                return
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout(keepalive):
                    await waiter
            except TimeoutError:
                yield b": keep-alive\n\n"


class Relay:
    def __init__(self, state: Any, bus: Bus, manager: GenerationManager) -> None:
        self.state = state
        self.bus = bus
        self.manager = manager
        self._copies: dict[UUID, Relayed] = {}
        self._handlers: dict[UUID, Any] = {}
        self._forwarding: dict[UUID, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        await self.bus.subscribe(CONTROL, self._control)
        self.bus.on_reconnect(self._ask_all_again)
        self._spawn(self._watch_forever(), "relay-watch")

    async def aclose(self) -> None:
        """After the generations' shutdown: let their last frames go out, then stop."""
        forwarding = list(self._forwarding.values())
        if forwarding:
            await asyncio.wait(forwarding, timeout=5)
        for task in [*self._tasks, *self._forwarding.values()]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._forwarding.values(), return_exceptions=True)

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- answers this replica runs -------------------------------------------------------------

    def _control(self, body: str) -> Awaitable[None] | None:
        try:
            message = json.loads(body)
            op, generation_id, user_id = message["op"], UUID(message["id"]), UUID(message["user"])
        except (ValueError, KeyError, TypeError):
            log.warning("malformed relay message", body=body[:200])
            return None
        generation = self.manager.get(generation_id, user_id)
        if generation is None:
            return None  # another replica's, or gone
        if op == "follow":
            self._forward(generation, int(message.get("after") or 0))
        elif op == "stop":
            return self.manager.stop(generation)
        return None

    def _forward(self, generation: Generation, after: int) -> None:
        if generation.id in self._forwarding:
            backlog = generation.frames[after:]
            if backlog:  # the running forwarder sends what comes next
                self.bus.publish(channel(generation.id), b"".join(backlog).decode())
            return
        task = asyncio.create_task(self._forward_all(generation), name="relay-forward")
        self._forwarding[generation.id] = task

    async def _forward_all(self, generation: Generation) -> None:
        """Every frame, batched as they come, until the end."""
        try:
            async for chunk in generation.follow(0, keepalive=3600.0):
                if not chunk.startswith(b":"):
                    self.bus.publish(channel(generation.id), chunk.decode())
        finally:
            self._forwarding.pop(generation.id, None)

    # -- answers another replica runs ----------------------------------------------------------

    async def attach(self, message: Message, user_id: UUID) -> Relayed:
        """This replica's copy of a `streaming` answer that another replica runs."""
        copy = self._copies.get(message.id)
        if copy is not None and copy.user_id == user_id:
            return copy
        copy = Relayed(message, user_id)
        self._copies[message.id] = copy

        def received(body: str) -> None:
            if not copy.add(body):
                self._ask(copy, soon=True)
            if copy.done:
                self._spawn(self._detach(copy), "relay-detach")

        self._handlers[message.id] = received
        await self.bus.subscribe(channel(message.id), received)  # listening before we ask
        self._ask(copy)
        return copy

    def _ask(self, copy: Relayed, *, soon: bool = False) -> None:
        now = time.monotonic()
        if soon and now - copy.asked_at < ASK_AGAIN_AFTER:
            return
        copy.asked_at = now
        ask = {"op": "follow", "id": str(copy.id), "user": str(copy.user_id)}
        self.bus.publish(CONTROL, json.dumps({**ask, "after": len(copy.frames)}))

    def _ask_all_again(self) -> None:
        for copy in self._copies.values():
            if not copy.done:
                self._ask(copy)

    async def _detach(self, copy: Relayed) -> None:
        handler = self._handlers.pop(copy.id, None)
        if handler is not None:
            await self.bus.unsubscribe(channel(copy.id), handler)

    async def stop(self, generation_id: UUID, user_id: UUID) -> bool:
        """Ask the owner to stop the answer; True once it has saved the final state."""
        body = json.dumps({"op": "stop", "id": str(generation_id), "user": str(user_id)})
        return await self.bus.broadcast(CONTROL, body, timeout=STOP_TIMEOUT)

    async def stop_in_chat(self, chat_id: UUID, user_id: UUID) -> None:
        """Stop the answers of a chat that other replicas run (the chat is being deleted)."""
        for generation_id in await relayed_repo.streaming_in_chat(
            self.state.pool, user_id, chat_id
        ):
            await self.stop(generation_id, user_id)

    # -- owners that went away -----------------------------------------------------------------

    async def _watch_forever(self) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            try:
                await self.watch()
            except Exception as exc:  # the next round tries again
                log.warning("relay watch failed", error=str(exc))

    async def watch(self) -> None:
        """Copies quiet for WATCH_INTERVAL: end those the database says are over, ask again
        for those that never heard from their owner; drop finished copies past retention."""
        now = time.monotonic()
        expired = [
            c.id for c in self._copies.values() if c.done and now - c.finished_at > RETAIN_RELAYED
        ]
        for generation_id in expired:
            del self._copies[generation_id]
        quiet = [
            c for c in self._copies.values() if not c.done and now - c.heard_at >= WATCH_INTERVAL
        ]
        for copy in quiet:
            message = await repo.get_message(self.state.pool, copy.user_id, copy.id)
            if message is None:  # deleted with its chat
                copy.abandon()
                await self._detach(copy)
                continue
            if message.status == "streaming":
                if not copy.frames:
                    self._ask(copy)
                continue
            message = await self._salvage(copy, message)
            copy.end_from(message, end_event(message))
            await self._detach(copy)

    async def _salvage(self, copy: Relayed, message: Message) -> Message:
        """An owner that died may have streamed more than it saved: keep what we relayed."""
        if message.status != "interrupted" or message.error != INTERRUPTED_BY_CRASH:
            return message
        content, reasoning = copy.text()
        if len(content) <= len(message.content) or not content.startswith(message.content):
            return message
        if await relayed_repo.salvage(self.state.pool, copy.id, content, reasoning or None):
            log.info("saved the relayed text of an interrupted answer",
                     generation_id=str(copy.id), characters=len(content))  # fmt: skip
            return await repo.get_message(self.state.pool, copy.user_id, copy.id) or message
        return message
