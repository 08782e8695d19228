"""Structured logging (structlog) with secret redaction, and the per-request access line."""

from __future__ import annotations

import io
import logging
import re
import sys
import time
import uuid
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, TextIO

import structlog
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from .metrics import Metrics

log = structlog.get_logger("llmhub")
access_log = structlog.get_logger("llmhub.access")

# Matches whole words of a key: `csrf_token`, `x-csrf-token`, `csrfToken` and `secret_key` are
# secret, `input_tokens` is not.
_SECRET_KEY_NAMES = re.compile(
    r"(^|[_-])(pass(word|wd)?|secret|token|api[_-]?key|private[_-]?key|key[_-]hash"
    r"|authorization|cookie|credentials?|session([_-]id)?|dsn)($|[_-])",
    re.I,
)
_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
# A URL's password runs to its last `@`: passwords may hold a raw `@` (or a `/`).
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):\S*@", re.I)
_PARAM_SECRET = re.compile(
    r"(?P<name>(?<![a-z0-9])(pass(word|wd)?|secret|token|api_?key|secret_?key)=)[^&\s'\"]+",
    re.I,
)
_BEARER = re.compile(r"\b(lh_[A-Za-z0-9_-]{8,}|(?i:bearer)\s+\S+)")
REDACTED = "[redacted]"


def redact_text(text: str) -> str:
    text = _URL_PASSWORD.sub(r"\g<scheme>\g<user>:" + REDACTED + "@", text)
    text = _PARAM_SECRET.sub(r"\g<name>" + REDACTED, text)
    return _BEARER.sub(REDACTED, text)


def _is_secret_name(key: Any) -> bool:
    return bool(_SECRET_KEY_NAMES.search(_CAMEL_HUMP.sub("_", str(key))))


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: REDACTED if _is_secret_name(k) else _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def redact_secrets(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Last line of defence: no key that names a secret, and no password in a URL, reaches a log."""
    for key, value in event_dict.items():
        if _is_secret_name(key):
            event_dict[key] = REDACTED
        elif isinstance(value, str | dict | list | tuple):
            event_dict[key] = _redact(value)
    return event_dict


def configure_logging(level: str = "info", json_logs: bool = False) -> None:
    level_no = logging.getLevelName(level.upper())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_logs
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=_redacted_traceback
        )
    )
    # Tracebacks become text before redaction: an exception's message can hold a secret.
    tail: list[Any] = [structlog.processors.format_exc_info] if json_logs else []
    structlog.configure(
        processors=[*shared, *tail, redact_secrets, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=structlog.WriteLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries (uvicorn, asyncpg, botocore) log through the stdlib: render them the same way.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *tail,
                redact_secrets,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level_no)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    for noisy in ("botocore", "aiobotocore", "aioboto3", "pgserver", "asyncio"):
        logging.getLogger(noisy).setLevel(max(level_no, logging.WARNING))


def _redacted_traceback(sio: TextIO, exc_info: Any) -> None:
    """The console's traceback: plain (never with local variables), and redacted."""
    buffer = io.StringIO()
    structlog.dev.plain_traceback(buffer, exc_info)
    sio.write(redact_text(buffer.getvalue()))


_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Control characters escaped: a path must not start a fake log line or recolour a terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class AccessLogMiddleware:
    """Gives every request an id (honouring a sane `X-Request-ID`), echoes it, logs one line,
    and counts the request in the HTTP metrics (by route template, once it has ended)."""

    def __init__(self, app: ASGIApp, metrics: Metrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode())
        status = 500
        streaming = False
        metrics = self.metrics
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers", [])
                if metrics is not None and _is_event_stream(headers):
                    streaming = True
                    metrics.open_streams.inc()
                message["headers"] = [*headers, header]
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            if metrics is not None:
                if streaming:
                    metrics.open_streams.dec()
                metrics.observe_http(scope["method"], route_template(scope), status, seconds)
            access_log.info(
                "request",
                method=scope["method"],
                path=printable(scope["path"]),
                status=status,
                duration_ms=round(seconds * 1000, 2),
            )
            structlog.contextvars.unbind_contextvars("request_id")


UNMATCHED_ROUTE = "unmatched"


def route_template(scope: Scope) -> str:
    """The route that served the request, as declared (`/api/chats/{chat_id}`), never the
    raw path: a metric label per chat id would grow without bound."""
    route = scope.get("route")
    if route is None:
        return UNMATCHED_ROUTE
    if isinstance(route, Mount):
        return f"{route.path}/{{path:path}}"
    return str(getattr(route, "path", UNMATCHED_ROUTE))


def _is_event_stream(headers: Any) -> bool:
    for name, value in headers:
        if name == b"content-type":
            return bool(value.startswith(b"text/event-stream"))
    return False


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            return candidate if _REQUEST_ID.fullmatch(candidate) else None
    return None
