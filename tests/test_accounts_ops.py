"""Accounts as operators meet them: sign-up policies, the CLI, several replicas, logs."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import argon2
import asyncpg
import pytest

from llmhub.auth import passwords
from llmhub.auth.identity import SESSION_CACHE_SECONDS, SESSION_COOKIE
from llmhub.config import Settings
from tests.hub import Hub, running_hub
from tests.serve import Ran, run_llmhub, serve

PASSWORD = "correct horse battery"


async def test_approval_policy(settings: Settings) -> None:
    settings = settings.model_copy(update={"signup_policy": "approval"})
    async with running_hub(settings) as hub:
        admin = await hub.signup("admin@example.com")  # the first account is always let in
        assert (await admin.get("/api/auth/me")).body["user"]["role"] == "admin"
        newcomer = hub.client()
        response = await newcomer.post(
            "/api/auth/signup", {"email": "new@example.com", "password": PASSWORD}
        )
        assert response.status == 202 and response.body["pending"] is True
        assert "Set-Cookie" not in response.headers
        login = {"email": "new@example.com", "password": PASSWORD}
        refused = await newcomer.post("/api/auth/login", login)
        assert (refused.status, refused.error_code) == (403, "account_pending")

        pending = (await admin.get("/api/admin/users?role=pending")).body["data"]
        assert [u["email"] for u in pending] == ["new@example.com"]
        approved = await admin.patch(f"/api/admin/users/{pending[0]['id']}", {"role": "user"})
        assert approved.status == 200
        assert (await newcomer.post("/api/auth/login", login)).status == 200
        assert (await newcomer.get("/api/auth/me")).body["user"]["role"] == "user"


async def test_closed_policy(settings: Settings) -> None:
    settings = settings.model_copy(update={"signup_policy": "closed"})
    async with running_hub(settings) as hub:
        await hub.signup("admin@example.com")
        response = await hub.client().post(
            "/api/auth/signup", {"email": "late@example.com", "password": PASSWORD}
        )
        assert (response.status, response.error_code) == (403, "signup_closed")


async def test_cookies_are_secure_in_aws_mode_and_behind_https(settings: Settings) -> None:
    async with running_hub(settings) as hub:
        client = hub.client()
        response = await client.post(
            "/api/auth/signup",
            {"email": "a@example.com", "password": PASSWORD},
            headers={"X-Forwarded-Proto": "https"},  # from 127.0.0.1, a trusted proxy
        )
        assert "secure" in response.headers["Set-Cookie"].lower()
    aws = settings.model_copy(
        update={
            "mode": "aws",
            "bedrock": settings.bedrock.model_copy(update={"endpoint_url": "http://127.0.0.1:9"}),
        }
    )
    async with running_hub(aws) as hub:
        response = await hub.client().post(
            "/api/auth/signup", {"email": "b@example.com", "password": PASSWORD}
        )
        assert response.status == 201
        assert "secure" in response.headers["Set-Cookie"].lower()


async def test_logout_reaches_another_replica_within_a_second(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_hub(settings) as one, running_hub(settings) as two:
        now = [1000.0]  # replica two's clock, which only this test moves
        monkeypatch.setattr(two.app.state.auth, "clock", lambda: now[0])
        alice = await one.signup("alice@example.com")
        elsewhere = two.client()
        elsewhere.set_cookie(SESSION_COOKIE, alice.cookie(SESSION_COOKIE) or "")
        assert (await elsewhere.get("/api/auth/me")).status == 200  # cached on replica two now
        assert (await alice.post("/api/auth/logout")).status == 200
        assert (await alice.get("/api/auth/me")).status == 401  # at once where it happened
        now[0] += SESSION_CACHE_SECONDS
        assert (await elsewhere.get("/api/auth/me")).status == 401


async def test_users_and_keys_commands(hub: Hub, database_url: str, data_dir: Path) -> None:
    async def llmhub(*args: str, stdin: str | None = None) -> Ran:
        where = ("--database-url", database_url, "--data-dir", str(data_dir))
        return await run_llmhub(*args, *where, stdin=stdin)

    created = await llmhub(
        "users", "create", "ops@example.com", "--admin", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert created.returncode == 0, created.stderr
    assert "ops@example.com (admin)" in created.stdout

    key = await llmhub("keys", "create", "--user", "ops@example.com", "--name", "ci")
    assert key.returncode == 0, key.stderr
    assert key.stdout.count("\n") == 1 and key.stdout.startswith("lh_")
    keyed = hub.client(api_key=key.stdout.strip())
    me = await keyed.get("/api/auth/me")
    assert me.status == 200 and me.body["user"]["email"] == "ops@example.com"

    dev = await llmhub(
        "users", "create", "dev@example.com", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert dev.returncode == 0, dev.stderr
    assert "dev@example.com (user)" in dev.stdout
    listed = await llmhub("users", "list")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()]
    assert [row[1:3] for row in rows] == [["admin", "ops@example.com"], ["user", "dev@example.com"]]

    role = await llmhub("users", "set-role", "dev@example.com", "admin")
    assert role.returncode == 0 and "dev@example.com is now admin" in role.stdout
    promoted = await hub.client().post(
        "/api/auth/login", {"email": "dev@example.com", "password": PASSWORD}
    )
    assert promoted.status == 200
    assert promoted.body["user"]["role"] == "admin"

    reset = await llmhub(
        "users", "reset-password", "dev@example.com", "--password-stdin", stdin="another password\n"
    )
    assert reset.returncode == 0, reset.stderr
    login = await hub.client().post(
        "/api/auth/login", {"email": "dev@example.com", "password": "another password"}
    )
    assert login.status == 200
    old = await hub.client().post(
        "/api/auth/login", {"email": "dev@example.com", "password": PASSWORD}
    )
    assert old.status == 401

    duplicate = await llmhub(
        "users", "create", "OPS@example.com", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert duplicate.returncode == 1
    assert duplicate.stderr.strip() == "llmhub: an account with this email already exists"
    unknown = await llmhub("keys", "create", "--user", "ghost@example.com")
    assert unknown.returncode == 1 and "no user with email ghost@example.com" in unknown.stderr


async def test_passwords_keys_and_tokens_never_reach_the_logs(
    database_url: str, data_dir: Path
) -> None:
    async with serve(
        "--database-url",
        database_url,
        "--data-dir",
        str(data_dir),
        env={"LLMHUB_OLLAMA__URL": "http://127.0.0.1:9", "LLMHUB_LOG_LEVEL": "debug"},
    ) as server:
        secrets: list[str] = [PASSWORD, "a wrong password"]
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.post(
                f"{server.url}/api/auth/signup",
                json={"email": "a@example.com", "password": PASSWORD},
            ) as response:
                body = await response.json()
                secrets += [body["csrf_token"], response.cookies[SESSION_COOKIE].value]
            headers = {"X-CSRF-Token": body["csrf_token"]}
            async with http.post(f"{server.url}/api/keys", json={}, headers=headers) as response:
                secrets.append((await response.json())["key"])
            async with http.post(
                f"{server.url}/api/auth/login",
                json={"email": "a@example.com", "password": "a wrong password"},
            ) as response:
                assert response.status == 401
            async with http.get(
                f"{server.url}/api/auth/me", headers={"Authorization": f"Bearer {secrets[-1]}"}
            ) as response:
                assert response.status == 200
        assert await server.stop() == 0
    assert "/api/auth/login" in server.stderr  # the requests were logged ...
    for secret in secrets:
        assert secret not in server.stderr  # ... their secrets were not


async def test_production_hashing_unless_the_test_suite_asks(
    database_url: str, data_dir: Path
) -> None:
    """The suite's cheap hashing (LLMHUB_TEST_PASSWORD_HASHING) is its own: without it the
    CLI hashes with argon2id's recommended parameters, and aws mode refuses to run with it."""
    where = ("--database-url", database_url, "--data-dir", str(data_dir))
    created = await run_llmhub(
        *("users", "create", "real@example.com", "--password-stdin", *where),
        stdin=PASSWORD + "\n",
        env={passwords.TEST_HASHING_VARIABLE: ""},
    )
    assert created.returncode == 0, created.stderr
    conn = await asyncpg.connect(database_url)
    try:
        stored = await conn.fetchval("SELECT password_hash FROM users")
    finally:
        await conn.close()
    recommended = argon2.profiles.RFC_9106_LOW_MEMORY
    assert argon2.extract_parameters(stored) == recommended
    assert argon2.PasswordHasher().check_needs_rehash(stored) is False

    refused = await run_llmhub(
        *("serve", "--mode", "aws", "--database-url", "postgresql://db.invalid/llmhub"),
        env={"LLMHUB_SECRET_KEY": "k" * 40, passwords.TEST_HASHING_VARIABLE: "cheapest"},
    )
    assert refused.returncode == 2
    assert "aws mode never weakens password hashing" in refused.stderr
