"""Generations: model answers running as tasks owned by the app, not by an HTTP request.

A `Generation` keeps every SSE frame it produced, so any number of listeners can follow it and
a client that reconnects gets exactly the frames it missed (`Last-Event-ID`), then the live
ones. The task persists partial content on an interval and the final state at the end; a stop
cancels the task, which closes the provider's stream and with it the upstream request.

The final state is durable before anyone is told it: the `end` event follows a successful save.
A failed save is retried with back-off; if the database stays away for SAVE_RETRY_WINDOW, the
followers get a `pending` event (the answer is whole, its save is not) and the task keeps the
outcome in memory, retrying until the database takes it, then sends `end`.

Ownership across replicas is a lease (`llmhub.ownership`): a `streaming` row whose owner's
lease ran out was left by a process that is gone; the sweep marks it `interrupted`.
Other replicas follow and stop a generation through `llmhub.relay`, over the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import structlog

from providers.base import (
    ChatEnd,
    ChatMessage,
    ChatOptions,
    ChatRequest,
    ReasoningDelta,
    TextDelta,
    Usage,
)
from providers.errors import LLMHubError

from . import model_calls
from .auth.identity import Principal
from .model_calls import ModelCall
from .ownership import OwnerLease
from .repo import chats as repo
from .repo import owners
from .repo.chats import Message, Outcome

log = structlog.get_logger("llmhub.generations")

FLUSH_INTERVAL = 0.5  # seconds between partial-content writes of a running generation
KEEPALIVE_INTERVAL = 15.0  # an SSE comment after this long without an event
RETAIN_FINISHED = 300.0  # finished generations stay replayable this long
# A final save that fails is retried this long (with back-off) before followers are told it is
# pending; each attempt is bounded by the pool's acquire and statement timeouts too.
SAVE_RETRY_WINDOW = 5.0
SAVE_FIRST_DELAY = 0.05
SAVE_MAX_DELAY = 5.0
# What a stopped answer needs after its model stream is closed: the final save's retry window,
# the usage row, and the `end` frame reaching the client. SIGTERM lets connections run this
# long after the generations' own shutdown window (see cli), so no stream is cut before `end`.
FINISH_BUDGET = SAVE_RETRY_WINDOW + 5.0
INTERRUPTED_BY_CRASH = "the server stopped before the answer was complete"
INTERRUPTED_BY_SHUTDOWN = "the server shut down before the answer was complete"
TITLE_TIMEOUT = 60.0
# PostgreSQL text cannot hold NUL and UTF-8 cannot encode a lone surrogate; a model's JSON
# stream can carry both (`\u0000`, `\ud800`). Replaced as they arrive, so neither the SSE frame
# nor the saved answer fails on them.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def sse_frame(seq: int, event: str, data: dict[str, Any]) -> bytes:
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"id: {seq}\nevent: {event}\ndata: {payload}\n\n".encode()


def usage_json(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cached_tokens": usage.cached_tokens,
        "exact": usage.exact,
    }


class Generation:
    """One running (or recently finished) answer and its log of SSE frames."""

    def __init__(self, message: Message, user_id: UUID) -> None:
        self.id = message.id
        self.chat_id = message.chat_id
        self.user_id = user_id
        self.frames: list[bytes] = []
        self.done = False
        self.stop_as: str | None = None  # set before cancelling: "stopped" or "interrupted"
        self.started = False  # the task has begun (a cancel would reach its try blocks)
        self.finishing = False  # saving the final state: too late to cancel
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.dirty = False  # content arrived since the last partial write
        self.task: asyncio.Task[None] | None = None
        self.finished_at = 0.0
        # Set once the final state is saved, or once followers were told its save is pending.
        self.settled = asyncio.Event()
        self._wake = asyncio.Event()

    def emit(self, event: str, data: dict[str, Any]) -> None:
        self.frames.append(sse_frame(len(self.frames) + 1, event, data))
        self._wake.set()
        self._wake = asyncio.Event()

    def close(self) -> None:
        self.done = True
        self.finished_at = time.monotonic()
        self._wake.set()

    async def follow(
        self, after: int = 0, keepalive: float = KEEPALIVE_INTERVAL
    ) -> AsyncIterator[bytes]:
        """Frames with seq > `after`, then live ones until the end; idle gaps get comments."""
        sent = max(0, after)
        while True:
            if sent < len(self.frames):
                # Everything available in one write: a reattach replays in one go.
                chunk = b"".join(self.frames[sent:])
                sent = len(self.frames)
                yield chunk
                continue
            if self.done:
                return
            wake = self._wake
            try:
                async with asyncio.timeout(keepalive):
                    await wake.wait()
            except TimeoutError:
                yield b": keep-alive\n\n"


@dataclass(slots=True)
class Job:
    """What a generation needs to run: the admitted call and the request to send."""

    principal: Principal
    call: ModelCall
    request: ChatRequest
    model_id: str  # as the user chose it; also the model for the title
    first_exchange: bool  # the chat's first answer: generate a title after it
    user_text: str


class GenerationManager:
    def __init__(self, state: Any, *, shutdown_timeout: float, lease_seconds: float) -> None:
        self.state = state
        self.shutdown_timeout = shutdown_timeout
        self.lease = OwnerLease(state.pool, lease_seconds)
        self._running: dict[UUID, Generation] = {}
        self._finished: dict[UUID, Generation] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._drain: asyncio.Future[None] | None = None
        self._stopping = asyncio.Event()  # shutdown: pending saves make a last attempt

    @property
    def pool(self) -> asyncpg.Pool:
        pool: asyncpg.Pool = self.state.pool
        return pool

    @property
    def owner_key(self) -> int:
        return self.lease.key

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Take this process's owner lease, then interrupt what gone processes left behind."""
        await self.lease.acquire()
        await self.sweep()
        self._spawn(self._keep_lease(), name="generation-lease")
        self._spawn(self._sweep_forever(), name="generation-sweeper")
        self._spawn(self._flush_forever(), name="generation-flusher")

    async def sweep(self) -> int:
        """Interrupt `streaming` answers whose owner is gone; the count interrupted."""
        await self.lease.retire_dead_neighbours()
        swept = await owners.interrupt_orphans(self.pool, INTERRUPTED_BY_CRASH)
        if swept:
            log.warning("interrupted generations left by a stopped process", count=swept)
        return swept

    async def drain(self) -> None:
        """Let running generations finish for up to `shutdown_timeout`, then stop and persist
        them. Starts at SIGTERM (see cli), alongside uvicorn's own connection drain, so the
        two waits overlap instead of adding up; later calls wait for the same drain."""
        if self._drain is None:
            self._drain = asyncio.ensure_future(self._drain_running())
        await asyncio.shield(self._drain)

    async def _drain_running(self) -> None:
        tasks = [g.task for g in self._running.values() if g.task]
        if tasks:
            log.info("waiting for generations", count=len(tasks))
            await asyncio.wait(tasks, timeout=self.shutdown_timeout)
        for generation in list(self._running.values()):
            self._cancel(generation, "interrupted")
        # From here, a save that cannot be made in its retry window is given up.
        self._stopping.set()
        tasks = [g.task for g in self._running.values() if g.task]
        if tasks:
            await asyncio.wait(tasks, timeout=FINISH_BUDGET)

    async def shutdown(self) -> None:
        await self.drain()
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.wait(list(self._background), timeout=5)
        if not self._running:  # else the lease must outlive us: its rows are still streaming
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self.lease.release()

    async def _keep_lease(self) -> None:
        while True:
            await asyncio.sleep(self.lease.renew_interval)
            try:
                async with asyncio.timeout(self.lease.renew_interval):
                    if await self.lease.renew():
                        ids = [g.id for g in self._running.values()]
                        if ids:
                            await owners.reclaim(self.pool, self.owner_key, ids)
            except Exception as exc:  # the next round tries again; the lease has slack
                log.warning("generation lease renewal failed", error=str(exc))

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease.lease_seconds / 2)
            if not self.lease.steady:
                continue  # we were cut off too: give the others their lease to come back
            try:
                async with asyncio.timeout(self.lease.lease_seconds):
                    await self.sweep()
            except Exception as exc:  # retried next round
                log.warning("generation sweep failed", error=str(exc))

    async def _flush_forever(self) -> None:
        """Partial answers reach the database every FLUSH_INTERVAL, off the token path: the
        relay never waits for a write, and a stalled stream's last tokens are saved too."""
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            self._prune()  # also when no new answer starts
            due = [g for g in self._running.values() if g.dirty and not g.finishing]
            if due:
                await asyncio.gather(*(self._flush(g) for g in due))

    async def _flush(self, generation: Generation) -> None:
        generation.dirty = False
        try:
            await repo.flush_partial(
                self.pool,
                generation.id,
                "".join(generation.content),
                "".join(generation.reasoning) or None,
            )
        except Exception as exc:  # the final write carries everything anyway
            log.warning("partial flush failed", generation_id=str(generation.id), error=str(exc))

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # -- registry ------------------------------------------------------------------------------

    def get(self, generation_id: UUID, user_id: UUID) -> Generation | None:
        """A running or recently finished generation of this user's."""
        generation = self._running.get(generation_id) or self._finished.get(generation_id)
        return generation if generation and generation.user_id == user_id else None

    @property
    def running_count(self) -> int:
        return len(self._running)

    def running_in_chat(self, chat_id: UUID) -> list[Generation]:
        return [g for g in self._running.values() if g.chat_id == chat_id]

    async def wait_background(self, name: str) -> None:
        """Wait for the background tasks called `name` (e.g. "chat-title") started so far."""
        await asyncio.gather(*[t for t in self._background if t.get_name() == name])

    def _prune(self) -> None:
        horizon = time.monotonic() - RETAIN_FINISHED
        for gid in [gid for gid, g in self._finished.items() if g.finished_at < horizon]:
            del self._finished[gid]

    # -- running -------------------------------------------------------------------------------

    def launch(self, job: Job, user_message: Message | None, assistant: Message) -> Generation:
        self._prune()
        generation = Generation(assistant, job.principal.user.id)
        generation.emit(
            "start",
            {
                "chat_id": str(assistant.chat_id),
                "generation_id": str(assistant.id),
                "model": job.model_id,
                "user_message": user_message.public() if user_message else None,
                "assistant_message": assistant.public(),
            },
        )
        self._running[generation.id] = generation
        generation.task = asyncio.create_task(
            self._run(generation, job), name=f"generation-{generation.id}"
        )
        return generation

    async def stop(self, generation: Generation, as_status: str = "stopped") -> None:
        """Stop and wait until the final state is saved, or its save is known to be pending
        (not cancelled if our caller is)."""
        if generation.done or generation.task is None:
            return
        self._cancel(generation, as_status)
        settled = asyncio.ensure_future(generation.settled.wait())
        try:
            await asyncio.wait([generation.task, settled], return_when=asyncio.FIRST_COMPLETED)
        finally:
            settled.cancel()

    def _cancel(self, generation: Generation, as_status: str) -> None:
        if generation.task is not None and not generation.finishing:
            generation.stop_as = generation.stop_as or as_status
            # A task cancelled before its first step would never run its own clean-up; one
            # not yet started sees `stop_as` when it starts and finishes at once instead.
            if generation.started:
                generation.task.cancel()

    async def _run(self, generation: Generation, job: Job) -> None:
        started = time.monotonic()
        content, reasoning = generation.content, generation.reasoning
        end: ChatEnd | None = None
        status: str | None = None
        error: str | None = None
        failure: LLMHubError | None = None
        ttft_ms: int | None = None
        generation.started = True
        try:
            if generation.stop_as is not None:
                raise asyncio.CancelledError
            stream = job.call.provider.chat(job.request)
            try:
                async for event in stream:
                    if isinstance(event, TextDelta | ReasoningDelta):
                        if ttft_ms is None:
                            ttft_ms = round((time.monotonic() - started) * 1000)
                        is_text = isinstance(event, TextDelta)
                        text = event.text
                        if _UNSTORABLE.search(text):
                            text = _UNSTORABLE.sub("\ufffd", text)
                        (content if is_text else reasoning).append(text)
                        generation.emit("delta" if is_text else "reasoning", {"text": text})
                        generation.dirty = True
                    elif isinstance(event, ChatEnd):
                        end = event
            finally:
                await stream.aclose()
        except asyncio.CancelledError:
            # A stop (or shutdown): the provider stream is closed, so upstream is too. Finish
            # normally from here on, saving the partial answer.
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            # Too late if the model's final event already came (the provider was only
            # draining its connection): the answer is whole, and saved as such below.
            if end is None:
                status = generation.stop_as or "interrupted"
                if status == "interrupted":
                    error = INTERRUPTED_BY_SHUTDOWN
        except LLMHubError as exc:
            status, error, failure = "error", exc.message, exc
        except Exception as exc:
            log.exception("generation failed", generation_id=str(generation.id))
            status, error = "error", f"internal error: {type(exc).__name__}"
        if status is None:
            if end is None:
                status, error = "error", "the model's stream ended without a final event"
            elif end.stop_reason == "error":
                status, error = "error", end.error or "the model failed mid-answer"
            elif end.stop_reason == "cancelled":
                status = "stopped"
            else:
                status = "complete"
        await self._finish(
            generation, job, started, status, error, end, content, reasoning, ttft_ms, failure
        )

    async def _finish(
        self,
        generation: Generation,
        job: Job,
        started: float,
        status: str,
        error: str | None,
        end: ChatEnd | None,
        content: list[str],
        reasoning: list[str],
        ttft_ms: int | None,
        failure: LLMHubError | None = None,
    ) -> None:
        generation.finishing = True
        text, thoughts = "".join(content), "".join(reasoning) or None
        usage = end.usage if end is not None else None
        if usage is None or (usage.input_tokens == 0 and usage.output_tokens == 0):
            usage = _estimate_usage(job.request, text, thoughts)
        duration_ms = round((time.monotonic() - started) * 1000)
        stop_reason = end.stop_reason if end is not None else None
        if stop_reason is None and status == "stopped":
            stop_reason = "cancelled"
        outcome = Outcome(
            status=status,
            content=text,
            reasoning=thoughts,
            error=error,
            stop_reason=stop_reason,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_tokens=usage.cached_tokens,
            usage_exact=usage.exact,
            ttft_ms=ttft_ms,
            duration_ms=duration_ms,
        )
        if not await self._save_final(generation, outcome):
            # Only at shutdown, with the database still away: the answer is lost, and the
            # followers' last word was `pending`.
            log.error("finished answer not saved: the database stayed unavailable",
                      generation_id=str(generation.id), status=status,
                      characters=len(text))  # fmt: skip
            generation.close()
            self._running.pop(generation.id, None)
            generation.settled.set()
            return
        await model_calls.record(
            self.state,
            job.call,
            usage,
            status=status,
            ttft_ms=ttft_ms,
            duration_ms=duration_ms,
            message_id=generation.id,
            error=(failure or error) if status == "error" else None,
        )
        generation.emit(
            "end",
            {
                "message_id": str(generation.id),
                "status": status,
                "stop_reason": stop_reason,
                "usage": usage_json(usage),
                "ttft_ms": ttft_ms,
                "duration_ms": duration_ms,
                "error": error,
            },
        )
        generation.close()
        self._running.pop(generation.id, None)
        self._finished[generation.id] = generation
        generation.settled.set()
        if status == "complete" and job.first_exchange:
            self._spawn(self._title(generation.chat_id, job, text), name="chat-title")

    async def _save_final(self, generation: Generation, outcome: Outcome) -> bool:
        """Save with back-off for SAVE_RETRY_WINDOW; then tell the followers the save is
        pending and keep trying (until shutdown) while the outcome waits in memory."""
        delay = SAVE_FIRST_DELAY
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SAVE_RETRY_WINDOW):
                while not await self._try_save(generation, outcome):
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, SAVE_MAX_DELAY)
                return True
        generation.emit(
            "pending",
            {
                "message_id": str(generation.id),
                "status": outcome.status,
                "message": "the answer is finished but not saved yet: the database is "
                "unavailable; it is kept and saved when the database is back",
            },
        )
        generation.settled.set()
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()
            delay = min(delay * 2, SAVE_MAX_DELAY)
            if await self._try_save(generation, outcome):
                log.info("pending answer saved", generation_id=str(generation.id))
                return True
        return False

    async def _try_save(self, generation: Generation, outcome: Outcome) -> bool:
        try:
            async with asyncio.timeout(SAVE_RETRY_WINDOW):
                await repo.finish_message(self.pool, generation.id, outcome)
        except Exception as exc:
            log.warning("could not save a finished answer yet",
                        generation_id=str(generation.id), error=str(exc))  # fmt: skip
            return False
        return True

    # -- titles --------------------------------------------------------------------------------

    async def _title(self, chat_id: UUID, job: Job, answer: str) -> None:
        """A short title from the chat's model (or the user's chosen one); any failure leaves
        the default title."""
        prefs = await repo.user_preferences(self.pool, job.principal.user.id)
        titles = prefs.get("title_generation") or {}
        if titles.get("enabled", True) is False:
            return
        model_id = titles.get("model") or job.model_id
        try:
            call = await model_calls.admit(self.state, job.principal, model_id)
        except LLMHubError as exc:
            log.info("no title generated", chat_id=str(chat_id), error=exc.message)
            return
        request = ChatRequest(
            model=call.model,
            messages=[ChatMessage("user", title_prompt(job.user_text, answer))],
            options=ChatOptions(temperature=0.2, max_tokens=24),
        )
        started = time.monotonic()
        parts: list[str] = []
        usage: Usage | None = None
        status = "complete"
        failure: BaseException | str | None = None
        try:
            async with asyncio.timeout(TITLE_TIMEOUT):
                async for event in call.provider.chat(request):
                    if isinstance(event, TextDelta):
                        parts.append(event.text)
                    elif isinstance(event, ChatEnd):
                        usage = event.usage
                        if event.stop_reason == "error":
                            status, failure = "error", event.error or "the model failed"
        except (LLMHubError, TimeoutError) as exc:
            status, failure = "error", exc
            log.info("title generation failed", chat_id=str(chat_id), error=str(exc))
        duration_ms = round((time.monotonic() - started) * 1000)
        await model_calls.record(
            self.state,
            call,
            usage or _estimate_usage(request, "".join(parts), None),
            status=status,
            ttft_ms=None,
            duration_ms=duration_ms,
            error=failure,
        )
        title = clean_title("".join(parts)) if status == "complete" else ""
        if title:
            await repo.set_generated_title(self.pool, chat_id, title)


def _estimate_usage(request: ChatRequest, text: str, reasoning: str | None) -> Usage:
    """About four characters a token: for quotas when the provider reported nothing."""
    prompt = sum(len(m.text) for m in request.messages)
    return Usage(
        input_tokens=(prompt + 3) // 4,
        output_tokens=(len(text) + len(reasoning or "") + 3) // 4,
        exact=False,
    )


TITLE_MAX_CHARS = 80


def title_prompt(question: str, answer: str) -> str:
    return (
        "Write a short title (at most six words) for the conversation below. Reply with the "
        "title only: no quotes, no trailing punctuation.\n\n"
        f"User: {question[:2000]}\n\nAssistant: {answer[:2000]}"
    )


_TITLE_PREFIX = re.compile(r"^\s*(title\s*:\s*)", re.IGNORECASE)
_TITLE_QUOTES = "#*_`\"' \u2018\u2019\u201c\u201d"
_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)
# Emphasis and code marks anywhere in the line: a title is shown as plain text.
_INLINE_MARKUP = re.compile(r"(\*\*|__|\*|`)")


def clean_title(raw: str) -> str:
    text = _THINK_BLOCK.sub("", raw)
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    line = _INLINE_MARKUP.sub("", _TITLE_PREFIX.sub("", line))
    line = " ".join(line.split()).strip(_TITLE_QUOTES).rstrip(".!:;,")
    if len(line) > TITLE_MAX_CHARS:
        line = line[: TITLE_MAX_CHARS - 1].rstrip() + "…"
    return line
