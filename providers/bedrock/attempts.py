"""What the retry loop hides, counted for the app's metrics: attempts after the first, and
responses Bedrock throttled (a throttle is never retried in-process; see `backoff`)."""

from __future__ import annotations


class AttemptCounter:
    __slots__ = ("retries", "throttles")

    def __init__(self) -> None:
        self.retries = 0  # attempts after the first, over all calls
        self.throttles = 0  # responses Bedrock throttled, before or during a stream
