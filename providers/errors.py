"""The typed error tree shared by providers and the app.

Each provider maps its SDK's exceptions onto these at one choke point; the app maps these onto
HTTP in one exception handler (`llmhub.errors`). `status`, `type` and `code` are what the JSON
error body carries.
"""

from __future__ import annotations


class LLMHubError(Exception):
    status: int = 500
    type: str = "server_error"
    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ProviderError(LLMHubError):
    status = 502
    type = "upstream_error"
    code = "provider_error"


class ModelNotFound(ProviderError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class ProviderUnavailable(ProviderError):
    status = 503
    type = "upstream_error"
    code = "provider_unavailable"


class RateLimited(ProviderError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limited"

    def __init__(
        self, message: str, *, retry_after: float | None = None, code: str | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class InvalidRequest(ProviderError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class AuthError(ProviderError):
    """The provider refused our credentials or the model is not enabled for them."""

    status = 502
    type = "upstream_error"
    code = "upstream_auth_error"


class ModelAccessDenied(ProviderError):
    """The provider will not serve this model to this account (Bedrock model access not granted):
    permanent for the caller until an admin acts, so not a 5xx that SDKs would retry."""

    status = 403
    type = "permission_error"
    code = "model_access_denied"


class UpstreamError(ProviderError):
    status = 502
    type = "upstream_error"
    code = "upstream_error"


class Unsupported(ProviderError):
    """The provider or model lacks the capability asked for (pull on Bedrock, say)."""

    status = 400
    type = "invalid_request_error"
    code = "unsupported"
