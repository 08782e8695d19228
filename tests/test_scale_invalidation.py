"""Two `llmhub serve` replicas on one PostgreSQL, on each bus: a change made through one replica
holds on the other from the very next request (each test first makes the other replica cache
what is about to change)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from llmhub.auth.identity import SESSION_COOKIE
from tests.fakes.ollama import FakeModel, FakeOllama
from tests.pg import throwaway_database
from tests.redis_server import private_redis
from tests.replicas import Spread, replicas, spread
from tests.serve import ServeProcess, run_llmhub

CHAT = "llama3.2:1b"
PULLABLE = "phi3:mini"


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeOllama]:
    async with FakeOllama([FakeModel(CHAT)], pullable=[FakeModel(PULLABLE, size=4_000)]) as f:
        yield f


@dataclass
class Cluster:
    servers: list[ServeProcess]
    database_url: str
    env: dict[str, str]  # what every replica was started with


@pytest.fixture(scope="module", params=["postgres", "redis"])
async def cluster(
    request: pytest.FixtureRequest, pg_admin_url: str, migrated_template: str, fake: FakeOllama
) -> AsyncIterator[Cluster]:
    template = migrated_template.rsplit("/", 1)[1].split("?", 1)[0]
    env = {"LLMHUB_OLLAMA__URL": fake.url, "LLMHUB_BUS": request.param}
    async with (
        private_redis() as redis_url,
        throwaway_database(pg_admin_url, template=template) as database_url,
    ):
        if request.param == "redis":
            env["LLMHUB_REDIS_URL"] = redis_url
        async with replicas(2, database_url, env) as running:
            yield Cluster(running, database_url, env)


@pytest.fixture(scope="module")
def servers(cluster: Cluster) -> list[ServeProcess]:
    return cluster.servers


@pytest.fixture(scope="module")
async def admin(servers: list[ServeProcess]) -> AsyncIterator[Spread]:
    async with spread(servers) as browser:
        await browser.signup("admin@example.com")  # the first account is the admin
        yield browser


@pytest.fixture
async def user(servers: list[ServeProcess], admin: Spread) -> AsyncIterator[Spread]:
    async with spread(servers) as browser:
        await browser.signup(f"user{id(browser)}@example.com")
        yield browser


async def user_id(browser: Spread) -> str:
    me = await browser.at(0).get("/api/auth/me")
    return str(me.body["user"]["id"])


async def test_logout_through_one_replica_is_refused_by_the_other(user: Spread) -> None:
    assert (await user.at(1).get("/api/auth/me")).status == 200
    cookie = user.client.cookie(SESSION_COOKIE)
    assert cookie is not None
    assert (await user.at(0).post("/api/auth/logout")).status == 200
    user.client.set_cookie(SESSION_COOKIE, cookie)  # the old cookie, replayed
    assert (await user.at(1).get("/api/auth/me")).status == 401


async def test_a_revoked_key_is_refused_by_the_other_replica(user: Spread) -> None:
    created = await user.at(0).post("/api/keys", {"name": "script"})
    assert created.status == 201
    key = created.body["key"]
    headers = {"Authorization": f"Bearer {key}"}
    bearer = Spread(user.urls)
    try:
        assert (await bearer.at(1).get("/v1/models", headers=headers)).status == 200
        key_id = created.body["api_key"]["id"]
        assert (await user.at(0).delete(f"/api/keys/{key_id}")).status == 200
        refused = await bearer.at(1).get("/v1/models", headers=headers)
        assert refused.status == 401
    finally:
        await bearer.close()


@pytest.mark.parametrize(
    "change", [{"disabled": True}, {"role": "pending"}], ids=["disable", "role"]
)
async def test_account_changes_hold_on_the_other_replica(
    admin: Spread, user: Spread, change: dict[str, object]
) -> None:
    assert (await user.at(1).get("/api/auth/me")).status == 200
    updated = await admin.at(0).patch(f"/api/admin/users/{await user_id(user)}", change)
    assert updated.status == 200, updated.text
    assert (await user.at(1).get("/api/auth/me")).status in (401, 403)


async def test_a_password_reset_ends_sessions_on_the_other_replica(
    admin: Spread, user: Spread
) -> None:
    assert (await user.at(1).get("/api/auth/me")).status == 200
    reset = await admin.at(0).post(
        f"/api/admin/users/{await user_id(user)}/password", {"password": "a new long password"}
    )
    assert reset.status == 200
    assert (await user.at(1).get("/api/auth/me")).status == 401


async def test_default_limits_changed_on_one_replica_apply_on_the_other(admin: Spread) -> None:
    before = await admin.at(1).get("/api/admin/limits")
    wanted = before.body["limits"]["requests_per_minute"] + 7
    changed = await admin.at(0).put("/api/admin/limits", {"requests_per_minute": wanted})
    assert changed.status == 200
    after = await admin.at(1).get("/api/admin/limits")
    assert after.body["limits"]["requests_per_minute"] == wanted


async def test_a_model_disabled_on_one_replica_is_hidden_by_the_other(
    admin: Spread, user: Spread
) -> None:
    def listed(response: object) -> list[str]:
        return [m["id"] for m in response.body["data"]]  # type: ignore[attr-defined]

    assert CHAT in listed(await user.at(1).get("/api/models"))
    try:
        disabled = await admin.at(0).patch(f"/api/admin/models/{CHAT}", {"enabled": False})
        assert disabled.status == 200, disabled.text
        assert CHAT not in listed(await user.at(1).get("/api/models"))
    finally:
        await admin.at(0).patch(f"/api/admin/models/{CHAT}", {"enabled": True})
    assert CHAT in listed(await user.at(1).get("/api/models"))


async def test_a_model_pulled_through_one_replica_is_offered_by_the_other(
    admin: Spread, fake: FakeOllama
) -> None:
    def listed(response: object) -> list[str]:
        return [m["id"] for m in response.body["data"]]  # type: ignore[attr-defined]

    assert PULLABLE not in listed(await admin.at(1).get("/api/models"))
    pulled = await admin.at(0).post("/api/admin/models/pull", {"name": PULLABLE})
    assert pulled.status == 200 and "event: done" in pulled.text, pulled.text
    try:
        assert PULLABLE in listed(await admin.at(1).get("/api/models"))
    finally:
        deleted = await admin.at(0).delete(f"/api/admin/models/{PULLABLE}")
        assert deleted.status == 200
    assert PULLABLE not in listed(await admin.at(1).get("/api/models"))


async def test_a_role_changed_from_the_command_line_holds_at_once(
    cluster: Cluster, user: Spread
) -> None:
    email = (await user.at(0).get("/api/auth/me")).body["user"]["email"]
    # The command takes longer to start than a cache entry lives: keep replica 1's fresh.
    watcher = Spread(user.urls)
    cookie = user.client.cookie(SESSION_COOKIE)
    assert cookie is not None
    watcher.client.set_cookie(SESSION_COOKIE, cookie)

    async def keep_cached() -> None:
        while True:  # pacing a refresh, not waiting for a condition
            if (await watcher.at(1).get("/api/auth/me")).status != 200:
                return
            await asyncio.sleep(0.05)

    warm = asyncio.create_task(keep_cached())
    try:
        cli = await run_llmhub(
            *("users", "set-role", email, "pending", "--database-url", cluster.database_url),
            env=cluster.env,
        )
        assert cli.returncode == 0, cli.stderr
        assert (await user.at(1).get("/api/auth/me")).status == 401
        assert (await user.at(0).get("/api/auth/me")).status == 401
    finally:
        warm.cancel()
        await watcher.close()
