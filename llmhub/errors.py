"""App errors, and the one place where every `LLMHubError` becomes an HTTP response."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from providers.errors import LLMHubError


class BadRequest(LLMHubError):
    status = 400
    type = "invalid_request_error"
    code = "bad_request"


class Unauthorized(LLMHubError):
    status = 401
    type = "authentication_error"
    code = "unauthorized"


class Forbidden(LLMHubError):
    status = 403
    type = "permission_error"
    code = "forbidden"


class NotFound(LLMHubError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class Conflict(LLMHubError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


class PayloadTooLarge(LLMHubError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class DatabaseDown(LLMHubError):
    """PostgreSQL is unavailable (down, restarting, frozen, out of connections): try again."""

    status = 503
    type = "server_error"
    code = "database_unavailable"
    retry_after = 5.0

    def __init__(self, message: str = "the database is unavailable; try again shortly") -> None:
        super().__init__(message)


def error_body(message: str, type_: str, code: str) -> dict[str, dict[str, str]]:
    return {"error": {"message": message, "type": type_, "code": code}}


def error_response(exc: LLMHubError) -> JSONResponse:
    headers = {}
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, round(retry_after)))
    return JSONResponse(error_body(exc.message, exc.type, exc.code), exc.status, headers=headers)


async def handle_llmhub_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LLMHubError)
    return error_response(exc)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    type_ = "invalid_request_error" if exc.status_code < 500 else "server_error"
    return JSONResponse(
        error_body(str(exc.detail), type_, code), exc.status_code, headers=exc.headers
    )


# Unexpected exceptions are caught by `middleware.UnexpectedErrorMiddleware`, inside the
# security-header and request-id middleware, so even a 500 carries both.
EXCEPTION_HANDLERS = {
    LLMHubError: handle_llmhub_error,
    HTTPException: handle_http_exception,
}
