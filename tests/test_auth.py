"""Accounts and access through the real app: sessions, CSRF, API keys, roles, throttling."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from itsdangerous import Signer
from starlette.routing import Route

from llmhub.auth.identity import SESSION_COOKIE
from tests.hub import Client, Hub

PASSWORD = "correct horse battery"


async def db(hub: Hub) -> asyncpg.Connection:
    return await asyncpg.connect(hub.app.state.settings.database_url)


async def sql(hub: Hub, query: str, *args: Any) -> Any:
    conn = await db(hub)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


# -- the authorisation matrix, generated from the route table -----------------------------------


def api_routes(hub: Hub) -> list[tuple[str, str, Any]]:
    found = []
    for route in hub.app.routes:
        if isinstance(route, Route):
            for method in sorted((route.methods or set()) - {"HEAD"}):
                found.append((route.path, method, route.endpoint))
    return found


async def test_every_route_declares_who_may_call_it(hub: Hub) -> None:
    routes = api_routes(hub)
    assert len(routes) > 10
    undeclared = [f"{m} {p}" for p, m, e in routes if getattr(e, "access", None) is None]
    assert undeclared == [], "use @endpoint(...) on these routes"


async def make_world(hub: Hub) -> dict[str, Any]:
    admin = await hub.signup("admin@example.com")
    alice = await hub.signup("alice@example.com")
    bob = await hub.signup("bob@example.com")
    carol = await hub.signup("carol@example.com")
    dave = await hub.signup("dave@example.com")
    alice_me = (await alice.get("/api/auth/me")).body["user"]
    alice_key = (await alice.post("/api/keys", {"name": "k"})).body["api_key"]
    alice_chat = (await alice.post("/api/chats", {"title": "Alice's"})).body["chat"]
    alice_answer = await sql(
        hub,
        "INSERT INTO messages (chat_id, user_id, role, content) "
        "VALUES ($1, $2, 'assistant', 'hi') RETURNING id::text",
        alice_chat["id"],
        alice_me["id"],
    )
    # Keys made while active keep working as credentials, so we can see what a pending or
    # disabled account is told (their sessions end when the admin changes them).
    carol_key_client = await hub.key_client(carol)
    dave_key_client = await hub.key_client(dave)
    users = {u["email"]: u for u in (await admin.get("/api/admin/users")).body["data"]}
    assert (
        await admin.patch(
            f"/api/admin/users/{users['carol@example.com']['id']}", {"role": "pending"}
        )
    ).status == 200
    assert (
        await admin.patch(f"/api/admin/users/{users['dave@example.com']['id']}", {"disabled": True})
    ).status == 200
    return {
        "admin": admin,
        "alice": alice,
        "bob": bob,
        "pending": carol_key_client,
        "disabled": dave_key_client,
        "params": {
            "key_id": alice_key["id"],
            "user_id": alice_me["id"],
            "model_id": "llama3.2:1b",
            "chat_id": alice_chat["id"],
            "message_id": alice_answer[0]["id"],
            "generation_id": alice_answer[0]["id"],
        },
    }


def fill(path: str, params: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[0]
        assert name in params, f"the matrix needs a resource for path parameter {name!r}"
        return params[name]

    return re.sub(r"\{([^}]+)\}", value, path)


async def test_authorisation_matrix(hub: Hub) -> None:
    world = await make_world(hub)
    anonymous = hub.client()
    checked = 0
    for path, method, handler in api_routes(hub):
        access = handler.access
        if access == "public":
            continue
        url = fill(path, world["params"])
        where = f"{method} {path}"

        response = await anonymous.request(method, url, {})
        assert (response.status, response.error_code) == (401, "unauthorized"), where
        for who, code in (("pending", "account_pending"), ("disabled", "account_disabled")):
            response = await world[who].request(method, url, {})
            assert (response.status, response.error_code) == (403, code), f"{who}: {where}"
        if access == "admin":
            response = await world["bob"].request(method, url, {})
            assert (response.status, response.error_code) == (403, "admin_required"), where
        elif "{" in path:
            # Bob asks for Alice's resource: it does not exist as far as he can tell.
            response = await world["bob"].request(method, url, {})
            assert response.status == 404, where
        checked += 1
    assert checked >= 10


# -- sign-up, sign-in, sessions -------------------------------------------------------------------


async def test_first_signup_is_admin_and_signed_in(hub: Hub) -> None:
    first = await hub.signup("first@example.com")
    second = await hub.signup("second@example.com")
    assert (await first.get("/api/auth/me")).body["user"]["role"] == "admin"
    me = await second.get("/api/auth/me")
    assert me.status == 200 and me.body["user"]["role"] == "user"
    assert me.body["csrf_token"] == second.csrf_token


async def test_session_cookie_attributes(hub: Hub) -> None:
    client = hub.client()
    response = await client.post(
        "/api/auth/signup", {"email": "c@example.com", "password": PASSWORD}
    )
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    for attribute in ("HttpOnly", "SameSite=lax", "Path=/"):
        assert attribute.lower() in cookie.lower()
    assert "secure" not in cookie.lower()  # plain http in local mode
    # The cookie holds only the signed id: no user data, and the database has only its hash.
    value = client.cookie(SESSION_COOKIE)
    assert value is not None and "c@example.com" not in value
    session_id = value.rsplit(".", 1)[0]
    rows = await sql(hub, "SELECT id_hash FROM sessions")
    assert len(rows) == 1 and session_id.encode() not in rows[0]["id_hash"]


async def test_email_is_case_insensitive_and_unique(hub: Hub) -> None:
    await hub.signup("Mixed@Example.com")
    again = await hub.client().post(
        "/api/auth/signup", {"email": "mixed@example.COM", "password": PASSWORD}
    )
    assert (again.status, again.error_code) == (409, "email_taken")
    login = await hub.client().post(
        "/api/auth/login", {"email": "MIXED@example.com", "password": PASSWORD}
    )
    assert login.status == 200


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"email": "not-an-email", "password": PASSWORD}, "validation_error"),
        ({"email": "a@example.com", "password": "short"}, "weak_password"),
        ({"email": "a@example.com"}, "validation_error"),
        ({"email": "a@example.com", "password": PASSWORD, "role": "admin"}, "validation_error"),
    ],
)
async def test_bad_signups_are_400(hub: Hub, body: dict[str, str], code: str) -> None:
    response = await hub.client().post("/api/auth/signup", body)
    assert (response.status, response.error_code) == (400, code)
    assert set(response.body["error"]) == {"message", "type", "code"}


async def test_malformed_json_is_400(hub: Hub) -> None:
    response = await hub.client().request(
        "POST", "/api/auth/login", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert (response.status, response.error_code) == (400, "invalid_json")


async def test_login_rotates_the_session_no_fixation(hub: Hub) -> None:
    await hub.signup("victim@example.com")
    attacker = await hub.signup("attacker@example.com")
    planted = attacker.cookie(SESSION_COOKIE)
    victim = hub.client()
    victim.set_cookie(SESSION_COOKIE, planted)
    response = await victim.post(
        "/api/auth/login", {"email": "victim@example.com", "password": PASSWORD}
    )
    assert response.status == 200
    assert victim.cookie(SESSION_COOKIE) != planted
    assert (await victim.get("/api/auth/me")).body["user"]["email"] == "victim@example.com"
    # The planted session itself was ended by the sign-in that replaced it.
    assert (await attacker.get("/api/auth/me")).status == 401


async def test_logout_refuses_the_old_cookie_at_once(hub: Hub) -> None:
    alice = await hub.signup("alice@example.com")
    assert (await alice.get("/api/auth/me")).status == 200  # now cached
    stolen = alice.cookie(SESSION_COOKIE)
    assert (await alice.post("/api/auth/logout")).status == 200
    replay = hub.client()
    replay.set_cookie(SESSION_COOKIE, stolen)
    assert (await replay.get("/api/auth/me")).status == 401
    assert (await alice.get("/api/auth/me")).status == 401


async def test_sign_out_everywhere(hub: Hub) -> None:
    await hub.signup("alice@example.com")
    phone, laptop = hub.client(), hub.client()
    for device in (phone, laptop):
        await device.post("/api/auth/login", {"email": "alice@example.com", "password": PASSWORD})
        assert (await device.get("/api/auth/me")).status == 200
    response = await phone.post("/api/auth/logout-everywhere")
    assert response.status == 200 and response.body["sessions_ended"] == 3
    assert (await laptop.get("/api/auth/me")).status == 401
    assert (await phone.get("/api/auth/me")).status == 401


async def test_idle_and_absolute_expiry(hub: Hub) -> None:
    idle = await hub.signup("idle@example.com")
    old = await hub.signup("old@example.com")
    await sql(
        hub,
        "UPDATE sessions SET last_seen_at = now() - interval '8 days' "
        "WHERE user_id = (SELECT id FROM users WHERE email = 'idle@example.com')",
    )
    await sql(
        hub,
        "UPDATE sessions SET expires_at = now() - interval '1 second' "
        "WHERE user_id = (SELECT id FROM users WHERE email = 'old@example.com')",
    )
    assert (await idle.get("/api/auth/me")).status == 401
    assert (await old.get("/api/auth/me")).status == 401


async def test_tampered_and_forged_cookies_are_refused(hub: Hub) -> None:
    alice = await hub.signup("alice@example.com")
    value = alice.cookie(SESSION_COOKIE)
    assert value is not None
    session_id, signature = value.rsplit(".", 1)
    forged_elsewhere = Signer("some other key", salt="llmhub.session").sign(session_id).decode()
    random_id = (
        Signer(hub.app.state.auth.secret_key, salt="llmhub.session")
        .sign("made-up-session-id")
        .decode()
    )

    def changed(text: str) -> str:  # a different first character, whatever it was
        # Not the last: base64's last character carries padding bits, and two characters
        # differing only in those decode to the same signature.
        return ("A" if text[0] != "A" else "B") + text[1:]

    for bad in (
        f"{session_id}.{changed(signature)}",
        f"{changed(session_id)}.{signature}",
        forged_elsewhere,
        random_id,
        "garbage",
    ):
        client = hub.client()
        client.set_cookie(SESSION_COOKIE, bad)
        assert (await client.get("/api/auth/me")).status == 401, bad


# -- CSRF ----------------------------------------------------------------------------------------


async def test_csrf_is_required_on_cookie_writes(hub: Hub) -> None:
    alice = await hub.signup("alice@example.com")
    bob = await hub.signup("bob@example.com")
    body = {"name": "k"}
    missing = await alice.post("/api/keys", body, csrf=False)
    assert (missing.status, missing.error_code) == (403, "csrf_failed")
    wrong = await alice.post("/api/keys", body, headers={"X-CSRF-Token": "0" * 64})
    assert (wrong.status, wrong.error_code) == (403, "csrf_failed")
    others = await alice.post("/api/keys", body, headers={"X-CSRF-Token": bob.csrf_token or ""})
    assert (others.status, others.error_code) == (403, "csrf_failed")
    cross = await alice.post("/api/keys", body, headers={"Origin": "https://evil.example"})
    assert (cross.status, cross.error_code) == (403, "csrf_failed")
    cross_referer = await alice.post(
        "/api/keys", body, headers={"Referer": "https://evil.example/page"}
    )
    assert cross_referer.status == 403
    same = await alice.post("/api/keys", body, headers={"Origin": hub.url})
    assert same.status == 201
    assert (await alice.get("/api/keys")).status == 200  # reads need no token
    keys = await sql(hub, "SELECT count(*) AS n FROM api_keys")
    assert keys[0]["n"] == 1  # refused requests changed nothing


async def test_cross_origin_login_is_refused(hub: Hub) -> None:
    await hub.signup("alice@example.com")
    response = await hub.client().post(
        "/api/auth/login",
        {"email": "alice@example.com", "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
    )
    assert (response.status, response.error_code) == (403, "csrf_failed")


async def test_bearer_requests_are_exempt_from_csrf(hub: Hub) -> None:
    alice = await hub.signup("alice@example.com")
    keyed = await hub.key_client(alice)
    created = await keyed.post("/api/keys", {"name": "from a script"})
    assert created.status == 201


# -- API keys ------------------------------------------------------------------------------------


async def test_api_key_lifecycle(hub: Hub) -> None:
    alice = await hub.signup("alice@example.com")
    created = await alice.post("/api/keys", {"name": "laptop"})
    assert created.status == 201
    key = created.body["key"]
    assert key.startswith("lh_") and len(key) > 40
    record = created.body["api_key"]
    assert record["prefix"] == key[:10] and "key" not in record

    keyed = hub.client(api_key=key)
    me = await keyed.get("/api/auth/me")
    assert me.status == 200 and me.body["user"]["email"] == "alice@example.com"
    assert "csrf_token" not in me.body

    listed = (await alice.get("/api/keys")).body["data"]
    assert [k["id"] for k in listed] == [record["id"]]
    assert key not in str(listed) and listed[0]["last_used_at"] is not None
    stored = await sql(hub, "SELECT key_hash, prefix FROM api_keys")
    assert key.encode() not in stored[0]["key_hash"] and stored[0]["prefix"] == key[:10]

    revoked = await alice.delete(f"/api/keys/{record['id']}")
    assert revoked.status == 200 and revoked.body["api_key"]["revoked_at"]
    refused = await keyed.get("/api/auth/me")
    assert (refused.status, refused.error_code) == (401, "invalid_api_key")


async def test_expired_and_malformed_keys(hub: Hub) -> None:
    alice = await hub.signup("alice@example.com")
    past = await alice.post("/api/keys", {"expires_at": "2020-01-01T00:00:00Z"})
    assert (past.status, past.error_code) == (400, "validation_error")
    created = await alice.post("/api/keys", {"expires_at": "2999-01-01T00:00:00Z"})
    assert created.body["api_key"]["expires_at"].startswith("2999-01-01")
    assert (await hub.client(api_key=created.body["key"]).get("/api/auth/me")).status == 200
    expiring = await alice.post("/api/keys", {"name": "expiring"})
    await sql(
        hub,
        "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE name = $1",
        "expiring",
    )
    assert (await hub.client(api_key=expiring.body["key"]).get("/api/auth/me")).status == 401
    for header in ("Bearer nope", "Basic abc", "Bearer lh_unknown"):
        response = await hub.client().get("/api/auth/me", headers={"Authorization": header})
        assert (response.status, response.error_code) == (401, "invalid_api_key"), header


async def test_keys_are_private_to_their_owner(hub: Hub) -> None:
    alice = await hub.signup("alice@example.com")
    bob = await hub.signup("bob@example.com")
    key = (await alice.post("/api/keys", {})).body["api_key"]
    assert (await bob.get("/api/keys")).body["data"] == []
    assert (await bob.delete(f"/api/keys/{key['id']}")).status == 404
    assert (await bob.delete("/api/keys/not-a-uuid")).status == 404
    assert (await alice.get("/api/keys")).body["data"][0]["revoked_at"] is None


# -- passwords -----------------------------------------------------------------------------------


async def test_passwords_are_argon2id_and_never_returned(hub: Hub) -> None:
    alice = await hub.signup("alice@example.com")
    rows = await sql(hub, "SELECT password_hash FROM users")
    assert rows[0]["password_hash"].startswith("$argon2id$")
    responses = [
        await alice.get("/api/auth/me"),
        await alice.get("/api/admin/users"),
        await alice.post("/api/auth/login", {"email": "alice@example.com", "password": PASSWORD}),
    ]
    for response in responses:
        assert response.status == 200
        assert "argon2" not in response.text and "password_hash" not in response.text
        assert PASSWORD not in response.text


async def test_password_change_keeps_this_session_and_ends_others(hub: Hub) -> None:
    alice = await hub.signup("alice@example.com")
    other = hub.client()
    await other.post("/api/auth/login", {"email": "alice@example.com", "password": PASSWORD})
    wrong = await alice.post(
        "/api/auth/password", {"current_password": "nope nope", "new_password": "new password 1"}
    )
    assert (wrong.status, wrong.error_code) == (403, "invalid_credentials")
    changed = await alice.post(
        "/api/auth/password", {"current_password": PASSWORD, "new_password": "new password 1"}
    )
    assert changed.status == 200
    assert (await alice.get("/api/auth/me")).status == 200
    assert (await other.get("/api/auth/me")).status == 401
    login = await hub.client().post(
        "/api/auth/login", {"email": "alice@example.com", "password": "new password 1"}
    )
    assert login.status == 200


async def test_outdated_hash_is_upgraded_at_login(hub: Hub) -> None:
    from argon2 import PasswordHasher

    await hub.signup("alice@example.com")
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    await sql(hub, "UPDATE users SET password_hash = $1", weak)
    login = await hub.client().post(
        "/api/auth/login", {"email": "alice@example.com", "password": PASSWORD}
    )
    assert login.status == 200
    upgraded = (await sql(hub, "SELECT password_hash FROM users"))[0]["password_hash"]
    assert upgraded != weak and upgraded.startswith("$argon2id$")


# -- login throttling ----------------------------------------------------------------------------


async def test_login_backoff_after_five_failures(hub: Hub) -> None:
    await hub.signup("alice@example.com")
    client = hub.client()
    attempt: Callable[[str], Any] = lambda password: client.post(  # noqa: E731
        "/api/auth/login", {"email": "alice@example.com", "password": password}
    )
    for _ in range(5):
        assert (await attempt("wrong password")).status == 401
    throttled = await attempt(PASSWORD)  # even the right password waits out the back-off
    assert (throttled.status, throttled.error_code) == (429, "login_throttled")
    assert int(throttled.headers["Retry-After"]) >= 1


async def test_login_backoff_per_address_across_accounts(hub: Hub) -> None:
    client = hub.client()
    for n in range(5):
        response = await client.post(
            "/api/auth/login", {"email": f"nobody{n}@example.com", "password": "whatever1"}
        )
        assert response.status == 401
    response = await client.post(
        "/api/auth/login", {"email": "someone-else@example.com", "password": "whatever1"}
    )
    assert (response.status, response.error_code) == (429, "login_throttled")


async def test_unknown_and_wrong_password_look_the_same(hub: Hub) -> None:
    await hub.signup("alice@example.com")
    wrong = await hub.client().post(
        "/api/auth/login", {"email": "alice@example.com", "password": "wrong password"}
    )
    unknown = await hub.client().post(
        "/api/auth/login", {"email": "ghost@example.com", "password": "wrong password"}
    )
    assert wrong.status == unknown.status == 401
    assert wrong.body == unknown.body


# -- admins --------------------------------------------------------------------------------------


async def users_by_email(admin: Client) -> dict[str, dict[str, Any]]:
    return {u["email"]: u for u in (await admin.get("/api/admin/users")).body["data"]}


async def test_role_change_and_disable_revoke_sessions(hub: Hub) -> None:
    admin = await hub.signup("admin@example.com")
    alice = await hub.signup("alice@example.com")
    bob = await hub.signup("bob@example.com")
    assert (await alice.get("/api/auth/me")).status == 200
    ids = {e: u["id"] for e, u in (await users_by_email(admin)).items()}
    promoted = await admin.patch(f"/api/admin/users/{ids['alice@example.com']}", {"role": "admin"})
    assert promoted.status == 200 and promoted.body["user"]["role"] == "admin"
    assert (await alice.get("/api/auth/me")).status == 401  # signs in again with new rights
    await admin.patch(f"/api/admin/users/{ids['bob@example.com']}", {"disabled": True})
    assert (await bob.get("/api/auth/me")).status == 401
    login = await hub.client().post(
        "/api/auth/login", {"email": "bob@example.com", "password": PASSWORD}
    )
    assert (login.status, login.error_code) == (403, "account_disabled")


async def test_last_admin_cannot_be_lost(hub: Hub) -> None:
    admin = await hub.signup("admin@example.com")
    me = (await admin.get("/api/auth/me")).body["user"]
    for change in ({"role": "user"}, {"disabled": True}):
        response = await admin.patch(f"/api/admin/users/{me['id']}", change)
        assert (response.status, response.error_code) == (409, "last_admin")
    response = await admin.delete(f"/api/admin/users/{me['id']}")
    assert (response.status, response.error_code) == (409, "last_admin")


async def test_admin_resets_a_password(hub: Hub) -> None:
    admin = await hub.signup("admin@example.com")
    alice = await hub.signup("alice@example.com")
    ids = {e: u["id"] for e, u in (await users_by_email(admin)).items()}
    short = await admin.post(
        f"/api/admin/users/{ids['alice@example.com']}/password", {"password": "x"}
    )
    assert (short.status, short.error_code) == (400, "weak_password")
    reset = await admin.post(
        f"/api/admin/users/{ids['alice@example.com']}/password", {"password": "brand new pass"}
    )
    assert reset.status == 200
    assert (await alice.get("/api/auth/me")).status == 401
    login = await hub.client().post(
        "/api/auth/login", {"email": "alice@example.com", "password": "brand new pass"}
    )
    assert login.status == 200


async def test_deleting_a_user_deletes_their_chats_and_keys(hub: Hub) -> None:
    admin = await hub.signup("admin@example.com")
    alice = await hub.signup("alice@example.com")
    keyed = await hub.key_client(alice)
    ids = {e: u["id"] for e, u in (await users_by_email(admin)).items()}
    await sql(
        hub,
        "INSERT INTO chats (user_id, title) VALUES ($1::uuid, 'secret plans')",
        ids["alice@example.com"],
    )
    assert (await admin.delete(f"/api/admin/users/{ids['alice@example.com']}")).status == 200
    counts = await sql(
        hub,
        "SELECT (SELECT count(*) FROM chats) AS chats, (SELECT count(*) FROM api_keys) AS keys, "
        "(SELECT count(*) FROM sessions WHERE user_id = $1::uuid) AS sessions",
        ids["alice@example.com"],
    )
    assert dict(counts[0]) == {"chats": 0, "keys": 0, "sessions": 0}
    assert (await keyed.get("/api/auth/me")).status == 401
    assert (await admin.delete(f"/api/admin/users/{ids['alice@example.com']}")).status == 404


async def test_admin_limits_defaults(hub: Hub) -> None:
    admin = await hub.signup("admin@example.com")
    current = await admin.get("/api/admin/limits")
    assert current.body["limits"]["requests_per_minute"] == 60
    updated = await admin.put("/api/admin/limits", {"tokens_per_day": 5000})
    assert updated.body["limits"] == {
        "requests_per_minute": 60,
        "tokens_per_minute": 0,
        "tokens_per_day": 5000,
    }
    bad = await admin.put("/api/admin/limits", {"tokens_per_day": -1})
    assert bad.status == 400


# -- headers and limits on every response ---------------------------------------------------------


async def test_security_headers_everywhere(hub: Hub) -> None:
    client = hub.client()
    for path in ("/health", "/api/auth/me", "/", "/api/nope"):
        response = await client.get(path)
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"


async def test_oversized_body_is_413(hub: Hub) -> None:
    limit = hub.app.state.settings.max_body_bytes
    response = await hub.client().request(
        "POST",
        "/api/auth/login",
        data=b"x" * (limit + 1),
        headers={"Content-Type": "application/json"},
    )
    assert (response.status, response.error_code) == (413, "payload_too_large")
