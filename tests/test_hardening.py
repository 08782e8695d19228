"""Defaults that keep a deployment safe: what anonymous callers learn, what a bug returns."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmhub.config import Settings, load_settings
from tests.hub import Hub, running_hub
from tests.serve import run_llmhub

PASSWORD = "correct horse battery"


async def test_a_bug_is_a_json_500_with_headers_and_request_id(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug with a secret postgresql://u:hunter2@db/x")

    monkeypatch.setattr(hub.app.state.health, "report", broken)
    response = await hub.client().get("/health/ready", headers={"X-Request-ID": "bug-1"})
    assert response.status == 500
    assert response.body == {
        "error": {
            "message": "internal server error",
            "type": "server_error",
            "code": "internal_error",
        }
    }
    assert response.headers["X-Request-ID"] == "bug-1"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "hunter2" not in response.text


async def test_readiness_details_are_for_admins_only(hub: Hub) -> None:
    anonymous = await hub.client().get("/health/ready")
    assert anonymous.status == 200
    assert anonymous.body["providers"]["ollama"] == {
        "ok": False,
        "latency_ms": None,
        "detail": None,
    }
    admin = await hub.signup("admin@example.com")
    user = await hub.signup("user@example.com")
    assert (await user.get("/health/ready")).body["providers"]["ollama"]["detail"] is None
    detail = (await admin.get("/health/ready")).body["providers"]["ollama"]["detail"]
    assert detail and "127.0.0.1:9" in detail

    models = (await user.get("/api/models")).body["providers"]["ollama"]
    assert models["ok"] is False and models["detail"] is None
    assert (await admin.get("/api/models")).body["providers"]["ollama"]["detail"]


async def test_odd_model_ids_in_admin_paths_are_404(hub: Hub) -> None:
    admin = await hub.signup("admin@example.com")
    for path in ("/api/admin/models/%00", "/api/admin/models/" + "x" * 400):
        patched = await admin.patch(path, {"enabled": False})
        assert (patched.status, patched.error_code) == (404, "model_not_found"), path
        deleted = await admin.delete(path)
        assert deleted.status == 404, path


async def test_signups_per_address_are_limited(settings: Settings) -> None:
    limited = settings.model_copy(update={"signups_per_hour_per_address": 2})
    async with running_hub(limited) as hub:
        await hub.signup("one@example.com")
        await hub.signup("two@example.com")
        third = await hub.client().post(
            "/api/auth/signup", {"email": "three@example.com", "password": PASSWORD}
        )
        assert (third.status, third.error_code) == (429, "signup_throttled")
        assert int(third.headers["Retry-After"]) >= 1


async def test_hsts_only_where_cookies_are_secure(settings: Settings) -> None:
    async with running_hub(settings) as hub:
        response = await hub.client().get("/health")
        assert "Strict-Transport-Security" not in response.headers
    aws = settings.model_copy(
        update={
            "mode": "aws",
            "bedrock": settings.bedrock.model_copy(update={"endpoint_url": "http://127.0.0.1:9"}),
        }
    )
    async with running_hub(aws) as hub:
        response = await hub.client().get("/health")
        assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_trusted_proxies_follow_the_mode_unless_configured() -> None:
    assert load_settings().trusted_proxies == "127.0.0.1"
    aws = {"mode": "aws", "database_url": "postgresql://db/x", "secret_key": "k" * 40}
    assert load_settings(overrides=aws).trusted_proxies == "*"
    narrowed = load_settings(overrides={**aws, "forwarded_allow_ips": "10.0.0.0/16"})
    assert narrowed.trusted_proxies == "10.0.0.0/16"


async def test_revoking_a_malformed_key_id_is_a_clear_error(
    hub: Hub, database_url: str, data_dir: Path
) -> None:
    await hub.signup("ops@example.com")
    revoked = await run_llmhub(
        *("keys", "revoke", "not-a-uuid", "--user", "ops@example.com"),
        *("--database-url", database_url, "--data-dir", str(data_dir)),
    )
    assert revoked.returncode == 1
    assert revoked.stderr.strip().splitlines()[-1] == "llmhub: 'not-a-uuid' is not a key id"
