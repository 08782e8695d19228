"""The one place Bedrock's SDK and transport exceptions become `ProviderError`s."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)

from ..errors import (
    AuthError,
    InvalidRequest,
    ModelAccessDenied,
    ModelNotFound,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    UpstreamError,
)

ACCESS_HINT = "request model access in the Bedrock console (Model access) for this account/region"

# Codes arrive PascalCase from HTTP errors and camelCase from eventstream exception messages.
_UPSTREAM_CODES = frozenset(
    {
        "InternalServerException",
        "ModelTimeoutException",
        "ModelErrorException",
        "ModelStreamErrorException",
    }
)
_UNAVAILABLE_CODES = frozenset({"ServiceUnavailableException", "ModelNotReadyException"})
_CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "IncompleteSignatureException",
        "MissingAuthenticationTokenException",
    }
)

# Signature errors echo the canonical request, whose headers include the session token, and a
# malformed Authorization header comes back whole, access key id included.
_SIGNING_DETAIL = re.compile(r"\s*The (Canonical String|String-to-Sign) .*", re.S)
_ACCESS_KEY_ID = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b")

MAPPED = (BotoCoreError, ClientError, aiohttp.ClientError, TimeoutError)


def _error_message(exc: ClientError) -> str:
    """AWS's message for the error, without the credential material some messages echo."""
    message = str(exc.response.get("Error", {}).get("Message") or "")
    return _ACCESS_KEY_ID.sub(r"\1****", _SIGNING_DETAIL.sub("", message))


def _error_code(exc: ClientError) -> str:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code[:1].upper() + code[1:]


def _retry_after(exc: ClientError) -> float | None:
    headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    try:
        return max(0.0, float(headers.get("retry-after", "")))
    except ValueError:
        return None


def _map_client_error(exc: ClientError, model: str | None) -> ProviderError:
    code = _error_code(exc)
    message = _error_message(exc) or code
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if code == "ValidationException":
        if "model identifier is invalid" in message:
            return ModelNotFound(f"Bedrock model {model!r} not found: {message}")
        return InvalidRequest(f"Bedrock rejected the request: {message}")
    if code == "ResourceNotFoundException":
        return ModelNotFound(f"Bedrock model {model!r} not found: {message}")
    if code in ("ThrottlingException", "ServiceQuotaExceededException"):
        return RateLimited(
            f"Bedrock is throttling requests: {message}", retry_after=_retry_after(exc)
        )
    if code == "AccessDeniedException":
        return ModelAccessDenied(f"Bedrock denied access to {model!r}: {message} ({ACCESS_HINT})")
    if code in _CREDENTIAL_CODES:
        return AuthError(f"Bedrock rejected the AWS credentials: {message}")
    if code in _UNAVAILABLE_CODES:
        return ProviderUnavailable(f"Bedrock is unavailable: {message}")
    if code in _UPSTREAM_CODES or status >= 500:
        return UpstreamError(f"Bedrock error ({code}): {message}")
    return UpstreamError(f"Bedrock error ({code or status}): {message}")


def map_error(exc: BaseException, model: str | None = None) -> ProviderError:
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, ClientError):
        return _map_client_error(exc, model)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError | ProfileNotFound):
        return AuthError(f"No usable AWS credentials for Bedrock: {exc}")
    if isinstance(exc, ReadTimeoutError | TimeoutError):
        return UpstreamError(f"Bedrock timed out: {exc or 'read timeout'}", code="upstream_timeout")
    if isinstance(exc, EndpointConnectionError):
        return ProviderUnavailable(f"Cannot reach Bedrock: {exc}")
    if isinstance(exc, ConnectionClosedError | aiohttp.ClientError):
        return UpstreamError(f"Bedrock connection failed: {exc or type(exc).__name__}")
    if isinstance(exc, BotoCoreError):
        return UpstreamError(f"Bedrock client error: {exc}")
    return UpstreamError(f"Unexpected Bedrock failure: {exc!r}")


@contextmanager
def translated(model: str | None) -> Iterator[None]:
    try:
        yield
    except MAPPED as exc:
        raise map_error(exc, model) from exc


def is_transient(error: ProviderError) -> bool:
    """Worth another attempt: the service hiccuped, not the request or the quota."""
    if error.code == "upstream_timeout":
        return False  # a read timeout already waited its full length
    return type(error) in (UpstreamError, ProviderUnavailable)
