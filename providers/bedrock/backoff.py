"""Retries and throttling, per model.

botocore's adaptive retry mode keeps one token bucket per client: a single throttled model slows
every call to every model for the life of the process, and its retries stack with the ones the
caller's SDK makes after our 429. So botocore retries nothing here; instead:

- a transient failure before any output (5xx, unreachable) is retried with exponential back-off,
  up to `max_attempts` in all;
- a throttle is never retried in-process: the caller gets a 429 with `Retry-After` at once, and
  the throttled model alone cools down for that long (Bedrock's Retry-After, else doubling from
  one second), so calls in the meantime fail fast instead of adding to the pressure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..errors import ProviderError, RateLimited
from .attempts import AttemptCounter
from .errors import is_transient

T = TypeVar("T")

FIRST_COOLDOWN = 1.0
MAX_COOLDOWN = 30.0


class ModelBackoff:
    def __init__(
        self,
        *,
        max_attempts: int = 3,
        retry_delay: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self._clock = clock
        self.attempts = AttemptCounter()
        self._cooling: dict[str, tuple[float, int]] = {}  # model → (until, throttles in a row)

    def remaining(self, model: str) -> float:
        """Seconds `model` still cools down after a throttle (0 when it may be called)."""
        until, _ = self._cooling.get(model, (0.0, 0))
        return max(0.0, until - self._clock())

    def check(self, model: str) -> None:
        if (left := self.remaining(model)) > 0:
            raise RateLimited(
                f"Bedrock is throttling {model}; try again in {left:.1f}s", retry_after=left
            )

    def throttled(self, model: str, retry_after: float | None) -> float:
        self.attempts.throttles += 1
        _, strikes = self._cooling.get(model, (0.0, 0))
        delay = retry_after
        if delay is None:
            delay = min(MAX_COOLDOWN, FIRST_COOLDOWN * 2**strikes)
        self._cooling[model] = (self._clock() + delay, strikes + 1)
        return delay

    def succeeded(self, model: str) -> None:
        self._cooling.pop(model, None)

    async def call(self, model: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """`attempt()` (which raises mapped `ProviderError`s), under the rules above."""
        self.check(model)
        for number in range(1, self.max_attempts + 1):
            try:
                result = await attempt()
            except RateLimited as exc:
                exc.retry_after = self.throttled(model, exc.retry_after)
                raise
            except ProviderError as exc:
                if number == self.max_attempts or not is_transient(exc):
                    raise
                await asyncio.sleep(self.retry_delay * 2 ** (number - 1))
                self.attempts.retries += 1
            else:
                self.succeeded(model)
                return result
        raise AssertionError("unreachable: the last attempt returns or raises")
