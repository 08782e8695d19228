from tests.hub import Hub


async def test_signup_me_logout(hub: Hub) -> None:
    alice = await hub.signup("alice@example.com")
    me = await alice.get("/api/auth/me")
    assert me.status == 200, me.text
    assert me.body["user"]["role"] == "admin"
    out = await alice.post("/api/auth/logout")
    assert out.status == 200, out.text
    assert (await alice.get("/api/auth/me")).status == 401
