"""Request rate limits, token quotas and login back-off.

Counters live in memory, or in Redis when `redis_url` is set so every replica enforces one
limit. The `limits` library provides both storages and the moving-window request limiter;
token quotas are fixed windows we increment by the tokens a call used, after the call.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from providers.errors import ProviderUnavailable, RateLimited

from .identity import Principal

if TYPE_CHECKING:
    from limits.aio.storage import Storage

# The `limits` library is imported where it is used, not here: routes import this module, and
# `import llmhub.app` should not pay for the limiter before the app even starts.

LIMIT_NAMES = ("requests_per_minute", "tokens_per_minute", "tokens_per_day")
_WINDOWS = {"tokens_per_minute": 60, "tokens_per_day": 86400}


def make_storage(redis_url: str | None) -> Storage:
    from limits.aio.storage import MemoryStorage, RedisStorage

    if redis_url is None:
        return MemoryStorage()
    return RedisStorage(redis_url, implementation="redispy", key_prefix="llmhub")


P = ParamSpec("P")
R = TypeVar("R")


def _storage_down_is_503(
    method: Callable[Concatenate[Any, P], Awaitable[R]],
) -> Callable[Concatenate[Any, P], Awaitable[R]]:
    """Redis unreachable: a 503 saying so, not a 500. Limits are not silently skipped."""

    @functools.wraps(method)
    async def guarded(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(self, *args, **kwargs)
        except _storage_errors(self.storage) as exc:
            raise ProviderUnavailable(
                "the rate-limit store is unavailable; try again shortly",
                code="limits_unavailable",
            ) from exc

    return guarded


def _storage_errors(storage: Storage) -> tuple[type[BaseException], ...]:
    from limits.errors import StorageError

    base = storage.base_exceptions
    return (StorageError, *(base if isinstance(base, tuple) else (base,)))


@dataclass(frozen=True, slots=True)
class Bucket:
    """Who a counter belongs to ("user:<id>", "key:<id>") and the limits that apply to it."""

    name: str
    limits: dict[str, int]


def buckets_for(principal: Principal, defaults: dict[str, int]) -> list[Bucket]:
    user_limits = {**defaults, **principal.user.limits}
    buckets = [Bucket(f"user:{principal.user.id}", user_limits)]
    key = principal.api_key
    if key is not None and key.limits:
        buckets.append(Bucket(f"key:{key.id}", {**user_limits, **key.limits}))
    return buckets


class ModelCallLimiter:
    def __init__(self, storage: Storage, clock: Callable[[], float] = time.time) -> None:
        self.storage = storage
        # Token quotas count in fixed windows of this clock (tests move it across a window).
        self.clock = clock
        from limits.aio.strategies import MovingWindowRateLimiter

        self._moving = MovingWindowRateLimiter(storage)

    @_storage_down_is_503
    async def admit(self, buckets: list[Bucket]) -> None:
        """Before a model call: raise `RateLimited` if any bucket is over a limit."""
        now = int(self.clock())
        for bucket in buckets:
            for name, window in _WINDOWS.items():
                limit = bucket.limits.get(name, 0)
                if limit and await self.storage.get(_token_key(bucket, name, now)) >= limit:
                    raise RateLimited(
                        f"{name.replace('_', ' ')} quota of {limit} reached",
                        retry_after=_seconds_left(window, now),
                        code=f"quota_{name}",
                    )
        for bucket in buckets:
            rpm = bucket.limits.get("requests_per_minute", 0)
            if not rpm:
                continue
            item = _per_minute(rpm)
            if not await self._moving.hit(item, bucket.name):
                stats = await self._moving.get_window_stats(item, bucket.name)
                raise RateLimited(
                    f"rate limit of {rpm} requests per minute reached",
                    retry_after=max(1.0, stats.reset_time - time.time()),
                    code="rate_limit_requests",
                )

    @_storage_down_is_503
    async def record_tokens(self, buckets: list[Bucket], tokens: int) -> None:
        if tokens <= 0:
            return
        now = int(self.clock())
        for bucket in buckets:
            for name, window in _WINDOWS.items():
                if bucket.limits.get(name, 0):
                    await self.storage.incr(
                        _token_key(bucket, name, now), _seconds_left(window, now), amount=tokens
                    )


@functools.cache
def _per_minute(amount: int) -> Any:
    from limits import RateLimitItemPerMinute

    return RateLimitItemPerMinute(amount)


def _window_start(window: int, now: int) -> int:
    return now // window * window


def _seconds_left(window: int, now: int) -> int:
    return max(1, window - (now - _window_start(window, now)))


def _token_key(bucket: Bucket, name: str, now: int) -> str:
    return f"tokens:{bucket.name}:{name}:{_window_start(_WINDOWS[name], now)}"


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """One password check under way: whose, from where, and the back-off locks it holds."""

    account: str
    ip: str | None
    held: tuple[str, ...] = ()


class LoginThrottle:
    """Exponential back-off per account and per client address after repeated failures.

    An attempt counts as a failure from the moment it starts (`succeeded` takes it back), so a
    burst of parallel guesses cannot all start before the first of them has failed. Past the
    free failures, one attempt at a time may run, and only once the back-off since the last
    failure has passed: the others are refused and not counted. Two keys per counter make
    that hold under any interleaving: `:attempt`, taken by the one attempt that may run (for
    as long as its check takes), and `:backoff`, set by that attempt when it fails, before it
    lets go of `:attempt`, so at every moment one of the two refuses the next guess.
    """

    MAX_BACKOFF = 900  # seconds
    FORGET_AFTER = 3600  # failures older than this no longer count
    ATTEMPT_SECONDS = 60  # the longest a password check may hold its lock (a crashed one)

    def __init__(self, storage: Storage, free_failures: int) -> None:
        self.storage = storage
        self.free_failures = free_failures

    @staticmethod
    def _keys(account: str, ip: str | None) -> list[str]:
        # The address first: a throttled address is refused before an account key is made.
        return [*([f"login:ip:{_address_block(ip)}"] if ip else []), f"login:account:{account}"]

    def _backoff(self, failures: int) -> int:
        backoff: int = 2 ** max(0, failures - self.free_failures)
        return min(self.MAX_BACKOFF, backoff)

    @_storage_down_is_503
    async def check(self, account: str, ip: str | None) -> LoginAttempt:
        """Before a password is checked: counts the attempt, or raises `RateLimited`."""
        counted: list[str] = []
        held: list[str] = []
        for key in self._keys(account, ip):
            failures = await self.storage.incr(key, self.FORGET_AFTER)
            counted.append(key)
            if failures < self.free_failures:
                continue
            if await self.storage.incr(key + ":attempt", self.ATTEMPT_SECONDS) == 1:
                held.append(key)  # ours until this attempt ends (or the lock expires)
                # Read after taking the lock: a holder sets the back-off before it lets go.
                if await self.storage.get(key + ":backoff") == 0:
                    continue
                waiting = key + ":backoff"
            else:
                waiting = key + ":attempt"
            wait = await self.storage.get_expiry(waiting) - time.time()
            for taken in counted:  # a refused attempt is not a guess
                await self.storage.incr(taken, self.FORGET_AFTER, amount=-1)
            for taken in held:
                await self.storage.clear(taken + ":attempt")
            raise RateLimited(
                "too many failed sign-in attempts; try again later",
                retry_after=max(1.0, math.ceil(wait)),
                code="login_throttled",
            )
        return LoginAttempt(account, ip, tuple(held))

    async def _back_off(self, key: str) -> None:
        """For a key whose lock this attempt holds: the back-off first, then the lock goes."""
        failures = await self.storage.get(key)
        await self.storage.clear(key + ":backoff")  # only a lock holder writes it
        await self.storage.incr(key + ":backoff", self._backoff(failures))
        await self.storage.clear(key + ":attempt")

    @_storage_down_is_503
    async def failed(self, attempt: LoginAttempt) -> None:
        """The password was wrong: back off from now, for longer the more failures there are."""
        for key in attempt.held:
            await self._back_off(key)

    @_storage_down_is_503
    async def succeeded(self, attempt: LoginAttempt) -> None:
        *ip_key, account_key = self._keys(attempt.account, attempt.ip)
        for suffix in ("", ":attempt", ":backoff"):
            await self.storage.clear(account_key + suffix)
        for key in ip_key:  # people behind one NAT address sign in all day
            await self.storage.incr(key, self.FORGET_AFTER, amount=-1)
            if key in attempt.held:  # hand the address's lock back, at the back-off
                await self._back_off(key)


class SignupLimiter:
    """At most `per_hour` new accounts per address (block): each costs a slow hash and a row."""

    def __init__(self, storage: Storage, per_hour: int) -> None:
        self.storage = storage
        from limits import RateLimitItemPerHour
        from limits.aio.strategies import MovingWindowRateLimiter

        self._moving = MovingWindowRateLimiter(storage)
        self.item = RateLimitItemPerHour(per_hour)

    @_storage_down_is_503
    async def admit(self, ip: str | None) -> None:
        if ip is None or self.item.amount == 0:
            return
        if not await self._moving.hit(self.item, "signup", _address_block(ip)):
            stats = await self._moving.get_window_stats(self.item, "signup", _address_block(ip))
            raise RateLimited(
                "too many accounts created from this address; try again later",
                retry_after=max(1.0, stats.reset_time - time.time()),
                code="signup_throttled",
            )


def _address_block(ip: str) -> str:
    """IPv6 clients get a /64 each, so an address is counted with its /64 neighbours."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def describe(limits: dict[str, Any]) -> dict[str, int]:
    return {name: int(limits.get(name, 0)) for name in LIMIT_NAMES}


class DefaultLimits:
    """The admin-set defaults (app_settings), over the config file's, cached briefly (a change
    drops the cache on every replica at once; the time limit is the fallback)."""

    CACHE_SECONDS = 5.0

    def __init__(self, pool: Any, configured: dict[str, int]) -> None:
        self.pool = pool
        self.configured = configured
        self._cached: tuple[float, dict[str, int]] | None = None
        self._epoch = 0  # bumped by invalidate: a read that raced with it is not kept

    async def __call__(self) -> dict[str, int]:
        now = time.monotonic()
        if self._cached and self._cached[0] > now:
            return self._cached[1]
        epoch = self._epoch
        stored = await self.pool.fetchval(
            "SELECT value FROM app_settings WHERE key = 'default_limits'"
        )
        merged = {**self.configured, **(stored or {})}
        if epoch == self._epoch:
            self._cached = (now + self.CACHE_SECONDS, merged)
        return merged

    def invalidate(self) -> None:
        self._epoch += 1
        self._cached = None
