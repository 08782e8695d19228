"""Settings: CLI flags > LLMHUB_* environment > TOML file > defaults, built once at startup.

`config.example.toml` documents every key; keep the two in step.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

Mode = Literal["local", "hybrid", "aws"]
DEFAULT_OLLAMA_URL = "http://127.0.0.1:11434"
DEFAULT_CONFIG_FILE = Path("llmhub.toml")


def _url_validator(*schemes: str) -> AfterValidator:
    def check(value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in schemes:
            raise ValueError(
                f"must be a URL starting with {' or '.join(s + '://' for s in schemes)}"
            )
        if not parts.netloc and not (parts.scheme.startswith("postgres") and parts.query):
            raise ValueError("URL has no host")
        try:
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError as exc:
            raise ValueError(f"malformed URL: {exc}") from None
        return value.rstrip("/") if parts.scheme.startswith("http") else value

    return AfterValidator(check)


HttpUrl = Annotated[str, _url_validator("http", "https")]
PostgresUrl = Annotated[str, _url_validator("postgresql", "postgres")]
RedisUrl = Annotated[str, _url_validator("redis", "rediss", "unix")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OllamaSettings(_Section):
    url: HttpUrl | None = None
    urls: list[HttpUrl] = []  # several servers, balanced (providers/ollama_pool.py)
    dns_discovery: bool = False  # one server per address the URLs' host names resolve to
    connect_timeout: float = Field(5.0, gt=0)
    read_timeout: float = Field(300.0, gt=0)
    keep_alive: str | None = None

    @model_validator(mode="after")
    def _one_way(self) -> OllamaSettings:
        if self.url is not None and self.urls:
            raise ValueError("set url or urls, not both")
        return self


class BedrockSettings(_Section):
    region: str = "us-east-1"
    profile: str | None = None
    endpoint_url: HttpUrl | None = None
    runtime_endpoint_url: HttpUrl | None = None
    allowed_models: list[str] = []
    max_attempts: int = Field(3, ge=1, le=10)
    connect_timeout: float = Field(5.0, gt=0)
    read_timeout: float = Field(300.0, gt=0)
    default_max_tokens: int = Field(2048, ge=1)
    prompt_caching: bool = False
    guardrail_id: str | None = Field(None, min_length=1, max_length=2048)
    guardrail_version: str = Field("DRAFT", pattern=r"^([1-9][0-9]{0,7}|DRAFT)$")
    guardrail_stream_mode: Literal["sync", "async"] = "sync"


class LimitSettings(_Section):
    """Defaults for every user; admins override them per user or key. 0 means unlimited."""

    requests_per_minute: int = Field(60, ge=0)
    tokens_per_minute: int = Field(0, ge=0)
    tokens_per_day: int = Field(0, ge=0)


_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _check_issuer(value: str) -> str:
    """An OpenID issuer: https, except on this machine (tests, a local Keycloak). The value is
    kept as written: some providers' issuers end in a slash (Authentik) and must match exactly."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an https:// URL")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
        raise ValueError("must be https:// (http only on a loopback address)")
    return value


IssuerUrl = Annotated[str, AfterValidator(_check_issuer)]
_ALB_ARN = (
    r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:loadbalancer/app/[^/\s]+/[^/\s]+$"
)


class ClaimMapping(_Section):
    """Which claims name a user, and how groups become llmhub roles."""

    email_claim: str = "email"
    name_claim: str = "name"
    groups_claim: str = "groups"
    # Only these email domains may sign in (empty: any). The email must be verified.
    allowed_email_domains: list[str] = []
    # Group names (or ids, as the provider sends them) that make a user admin or user; when
    # either list is set, anyone in neither group is pending. Re-applied at every sign-in.
    admin_groups: list[str] = []
    user_groups: list[str] = []
    # Treat every email this provider sends as verified (for providers that never say so).
    trust_email: bool = False

    @property
    def roles_from_groups(self) -> bool:
        return bool(self.admin_groups or self.user_groups)


class OidcProviderSettings(ClaimMapping):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")
    display_name: str = ""
    issuer: IssuerUrl
    client_id: str = Field(min_length=1)
    client_secret: SecretStr | None = None
    scopes: list[str] = ["openid", "email", "profile"]
    # Extra authorization request parameters, e.g. {prompt = "select_account"}.
    authorize_params: dict[str, str] = {}
    # Where sign-out goes when discovery offers no end_session_endpoint (Cognito's /logout).
    logout_url: HttpUrl | None = None

    @model_validator(mode="after")
    def _needs_openid_scope(self) -> OidcProviderSettings:
        if "openid" not in self.scopes:
            raise ValueError("scopes: must include openid")
        return self

    @property
    def label(self) -> str:
        return self.display_name or self.name


class OidcSettings(_Section):
    # The URL users reach llmhub at, for redirect URIs (default: taken from each request).
    public_url: HttpUrl | None = None
    providers: list[OidcProviderSettings] = []

    @model_validator(mode="after")
    def _unique_names(self) -> OidcSettings:
        names = [p.name for p in self.providers]
        if len(names) != len(set(names)):
            raise ValueError("providers: names must be unique")
        return self


class AlbSettings(ClaimMapping):
    """The load balancer's signed identity header (`x-amzn-oidc-data`)."""

    arn: str = Field(pattern=_ALB_ARN)
    client_id: str = Field(min_length=1)
    issuer: IssuerUrl
    # Where the public keys are fetched by key id; default from the ARN's region.
    key_url: HttpUrl | None = None
    # Sign-out goes here after the load balancer's cookies are expired (Cognito's /logout).
    logout_url: HttpUrl | None = None
    session_cookie: str = "AWSELBAuthSessionCookie"

    @property
    def region(self) -> str:
        return self.arn.split(":")[3]

    @property
    def public_key_url(self) -> str:
        return self.key_url or f"https://public-keys.auth.elb.{self.region}.amazonaws.com"


class AuthSettings(_Section):
    # false: no password sign-in or sign-up (SSO only); the CLI can still create accounts.
    password_login: bool = True
    alb: AlbSettings | None = None


_toml_values: ContextVar[Mapping[str, Any] | None] = ContextVar("_toml_values", default=None)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LLMHUB_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    mode: Mode = "local"
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    data_dir: Path = Path("~/.local/share/llmhub")
    database_url: PostgresUrl | None = None
    db_pool_min: int = Field(1, ge=0)
    db_pool_max: int = Field(10, ge=2)  # requests and the background work share it
    db_connect_timeout: float = Field(30.0, gt=0)
    db_acquire_timeout: float = Field(5.0, gt=0)
    db_statement_timeout: float = Field(10.0, gt=0)
    migrate_on_start: bool = True
    secret_key: SecretStr | None = None
    redis_url: RedisUrl | None = None
    bus: Literal["auto", "postgres", "redis"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "console", "json"] = "auto"
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    forwarded_allow_ips: str | None = None
    shutdown_timeout: float = Field(30.0, ge=0)
    generation_lease: float = Field(30.0, ge=1)
    catalog_ttl: float = Field(300.0, gt=0)
    health_interval: float = Field(5.0, gt=0)
    metrics_token: SecretStr | None = None
    metrics_loopback: bool = True
    signup_policy: Literal["open", "approval", "closed"] = "open"
    session_idle_timeout: float = Field(7 * 86400, gt=0)
    session_max_age: float = Field(30 * 86400, gt=0)
    login_failures_before_backoff: int = Field(5, ge=1)
    signups_per_hour_per_address: int = Field(20, ge=0)
    limits: LimitSettings = LimitSettings()
    auth: AuthSettings = AuthSettings()
    oidc: OidcSettings = OidcSettings()
    ollama: OllamaSettings = OllamaSettings()
    bedrock: BedrockSettings = BedrockSettings()

    @model_validator(mode="after")
    def _check_profile(self) -> Settings:
        if self.db_pool_min > self.db_pool_max:
            raise ValueError("db_pool_min: must not exceed db_pool_max")
        if self.mode == "aws":
            if self.database_url is None:
                raise ValueError("database_url: required in aws mode (an external PostgreSQL)")
            if self.secret_key is None:
                raise ValueError("secret_key: required in aws mode (shared by all replicas)")
        if self.bus == "redis" and self.redis_url is None:
            raise ValueError("bus: 'redis' needs redis_url")
        if not self.auth.password_login and not (self.oidc.providers or self.auth.alb):
            raise ValueError(
                "auth.password_login: false needs [[oidc.providers]] or [auth.alb] configured"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = InitSettingsSource(settings_cls, init_kwargs=dict(_toml_values.get() or {}))
        return (init_settings, env_settings, toml)

    @property
    def bus_kind(self) -> Literal["postgres", "redis"]:
        """What carries messages between replicas; `auto` is PostgreSQL (see docs/scaling.md)."""
        return "redis" if self.bus == "redis" else "postgres"

    # Mode profiles: derived, not configured, so a mode always means the same thing.
    @property
    def uses_bedrock(self) -> bool:
        return self.mode in ("hybrid", "aws")

    @property
    def ollama_url(self) -> str | None:
        if self.ollama.url is not None:
            return self.ollama.url
        if self.ollama.urls:
            return self.ollama.urls[0]
        return None if self.mode == "aws" else DEFAULT_OLLAMA_URL

    @property
    def ollama_urls(self) -> list[str]:
        """Every configured Ollama server (none in aws mode unless configured)."""
        if self.ollama.urls:
            return list(self.ollama.urls)
        return [self.ollama_url] if self.ollama_url is not None else []

    @property
    def secure_cookies(self) -> bool:
        return self.mode == "aws"

    @property
    def trust_proxy_headers(self) -> bool:
        return self.mode == "aws"

    @property
    def trusted_proxies(self) -> str:
        """Whose X-Forwarded-* headers count: the configured list, else the mode's default."""
        if self.forwarded_allow_ips is not None:
            return self.forwarded_allow_ips
        return "*" if self.mode == "aws" else "127.0.0.1"

    @property
    def json_logs(self) -> bool:
        if self.log_format == "auto":
            return self.mode == "aws" or not _stderr_is_tty()
        return self.log_format == "json"

    @property
    def data_path(self) -> Path:
        return self.data_dir.expanduser()


def _stderr_is_tty() -> bool:
    import sys

    return sys.stderr.isatty()


class ConfigError(Exception):
    """A bad setting: the message is one line naming the key and the problem."""


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: not valid TOML: {exc}") from None


def load_settings(
    config_file: Path | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Build the settings, raising `ConfigError` with one readable line on any bad value."""
    from pydantic import ValidationError

    if config_file is None and DEFAULT_CONFIG_FILE.is_file():
        config_file = DEFAULT_CONFIG_FILE
    token = _toml_values.set(read_toml(config_file) if config_file else {})
    try:
        return Settings(**{k: v for k, v in (overrides or {}).items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    finally:
        _toml_values.reset(token)


def _describe(exc: Any) -> str:
    error = exc.errors(include_url=False, include_input=False)[0]
    key = ".".join(str(part) for part in error["loc"] if not isinstance(part, int))
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown setting"
    if not key and ": " in message:
        key, message = message.split(": ", 1)
    return f"{key or 'config'}: {message}"


def load_or_create_secret_key(settings: Settings) -> str:
    """The configured key, else one made once and kept in data_dir (sessions survive restarts)."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    path = settings.data_path / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key
