"""Counts what botocore's retry loop hides: retried attempts and throttled responses.

botocore retries inside one SDK call (adaptive mode), so a call that succeeded on its third
attempt looks like any other. Two event hooks on each client count the retries and the
throttles as they happen; the app's metrics read the totals when scraped.
"""

from __future__ import annotations

from typing import Any

THROTTLE_CODES = frozenset({"ThrottlingException", "TooManyRequestsException"})


class AttemptCounter:
    __slots__ = ("retries", "throttles")

    def __init__(self) -> None:
        self.retries = 0  # attempts after the first, over all calls
        self.throttles = 0  # responses AWS throttled, retried or not

    def watch(self, client: Any) -> None:
        client.meta.events.register("request-created", self._on_request)
        client.meta.events.register("needs-retry", self._on_response)

    def _on_request(self, request: Any, **_: Any) -> None:
        context = getattr(request, "context", None) or {}
        if context.get("retries", {}).get("attempt", 1) > 1:
            self.retries += 1

    def _on_response(self, response: Any = None, **_: Any) -> None:
        if response is not None:
            code = response[1].get("Error", {}).get("Code")
            if code in THROTTLE_CODES:
                self.throttles += 1
