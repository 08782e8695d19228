"""Sign-up, sign-in and sign-out in a real browser against a real `llmhub serve`."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Route, expect

from tests.browser.conftest import PASSWORD, NewPage, StartHub, screenshot
from tests.browser.ui import main_nav, sign_in, sign_up, signed_up

pytestmark = pytest.mark.browser


async def test_first_sign_up_becomes_admin_and_lands_in_the_app(
    hub_url: str, new_page: NewPage
) -> None:
    page = await new_page(hub_url)
    await page.goto("/")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await expect(page).to_have_title("Sign in · llmhub")
    await screenshot(page, "sign-in")

    await page.get_by_role("link", name="Create account").click()
    await expect(page).to_have_url(re.compile(r"/signup$"))
    await expect(page.get_by_role("heading", name="Create an account")).to_be_visible()
    await screenshot(page, "sign-up")
    await sign_up(page, "ada@example.com", PASSWORD, display_name="Ada Admin")

    nav = main_nav(page)
    await expect(nav.get_by_role("link", name="Admin")).to_be_visible()
    await expect(page).to_have_url(f"{hub_url}/")
    await expect(page.get_by_text("Ada Admin")).to_be_visible()
    await expect(page.get_by_role("heading", name="New chat")).to_be_visible()
    await screenshot(page, "chat-empty")


async def test_sign_out_sign_in_again_and_a_wrong_password(hub_url: str, new_page: NewPage) -> None:
    page = await new_page(hub_url)
    await signed_up(page, "bo@example.com", PASSWORD)

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await expect(page.get_by_role("status")).to_have_text("You are signed out.")
    await expect(page).to_have_url(re.compile(r"/signin$"))

    await sign_in(page, "bo@example.com", "not the password")
    await expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    await expect(page.get_by_label("Password")).to_be_empty()
    await expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")

    await sign_in(page, "bo@example.com", PASSWORD)
    await expect(main_nav(page)).to_be_visible()
    await expect(page).to_have_url(f"{hub_url}/")

    # The session survives a reload (cookie + /api/auth/me), and deep links work.
    await page.goto("/settings")
    await expect(page.get_by_role("heading", name="Settings", level=1)).to_be_visible()


async def test_signed_out_deep_link_returns_there_after_sign_in(
    hub_url: str, new_page: NewPage
) -> None:
    page = await new_page(hub_url)
    await signed_up(page, "cy@example.com", PASSWORD)
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    await page.goto("/settings")
    await sign_in(page, "cy@example.com", PASSWORD)
    await expect(page.get_by_role("heading", name="Settings", level=1)).to_be_visible()
    await expect(page).to_have_url(re.compile(r"/settings$"))


async def test_a_regular_user_cannot_see_the_admin_screens(hub_url: str, new_page: NewPage) -> None:
    admin = await new_page(hub_url)
    await signed_up(admin, "admin@example.com", PASSWORD)

    user = await new_page(hub_url)
    await signed_up(user, "user@example.com", PASSWORD)
    nav = main_nav(user)
    await expect(nav.get_by_role("link", name="Settings")).to_be_visible()
    await expect(nav.get_by_role("link", name="Admin")).to_have_count(0)

    await user.goto("/admin")
    await expect(user).to_have_url(re.compile(r"/admin/users$"))
    await expect(user.get_by_role("heading", name="Admins only")).to_be_visible()
    await expect(user.get_by_role("alert")).to_have_text(
        "You don\u2019t have permission to see this page."
    )
    await expect(user.get_by_role("navigation", name="Admin sections")).to_have_count(0)


async def test_a_pending_user_is_told_to_wait_until_an_admin_approves(
    start_hub: StartHub, new_page: NewPage
) -> None:
    url = await start_hub(LLMHUB_SIGNUP_POLICY="approval")
    admin = await new_page(url)
    await signed_up(admin, "admin@example.com", PASSWORD)  # the first user is admin regardless

    newcomer = await new_page(url)
    await newcomer.goto("/signup")
    await sign_up(newcomer, "newbie@example.com", PASSWORD)
    await expect(newcomer.get_by_role("heading", name="Waiting for approval")).to_be_visible()
    await expect(newcomer.get_by_role("status")).to_contain_text("An admin needs to approve it")
    await screenshot(newcomer, "sign-up-pending")
    await newcomer.get_by_role("link", name="Back to sign in").click()
    await sign_in(newcomer, "newbie@example.com", PASSWORD)
    await expect(newcomer.get_by_role("alert")).to_have_text(
        "Your account is waiting for an admin\u2019s approval."
    )

    await main_nav(admin).get_by_role("link", name="Admin").click()
    await expect(admin.get_by_role("heading", name="Users", level=2)).to_be_visible()
    await admin.get_by_label("Waiting for approval (1)").check()
    row = admin.get_by_role("listitem", name="newbie@example.com")
    await expect(row.get_by_text("Waiting for approval")).to_be_visible()
    await screenshot(admin, "admin-users-pending")
    await row.get_by_role("button", name="Approve").click()
    await expect(row).to_have_count(0)  # no longer in the pending filter
    await expect(admin.get_by_text("Nobody is waiting for approval.")).to_be_visible()
    await admin.get_by_label("All (2)").check()
    await expect(row.get_by_label("Role of newbie@example.com")).to_have_value("user")

    await sign_in(newcomer, "newbie@example.com", PASSWORD)
    await expect(main_nav(newcomer)).to_be_visible()
    await expect(main_nav(newcomer).get_by_role("link", name="Admin")).to_have_count(0)


async def test_throttled_sign_in_says_when_to_try_again(hub_url: str, new_page: NewPage) -> None:
    """The server's back-off (429 login_throttled + Retry-After) is shown as a wait time.

    The real back-off starts at one second, too short to observe without timing races, so this
    one answer is stubbed in the browser with a longer Retry-After; everything else is real.
    """
    page = await new_page(hub_url)
    await page.goto("/signin")

    async def throttled(route: Route) -> None:
        await route.fulfill(
            status=429,
            headers={"Retry-After": "125"},
            json={
                "error": {
                    "message": "too many failed sign-in attempts; try again later",
                    "type": "rate_limit_error",
                    "code": "login_throttled",
                }
            },
        )

    await page.route("**/api/auth/login", throttled)
    await sign_in(page, "who@example.com", "whatever-password")
    await expect(page.get_by_role("alert")).to_have_text(
        re.compile(r"^Too many failed sign-in attempts\. Try again in 2 minutes( \d seconds?)?\.$")
    )
    await expect(page.get_by_role("button", name="Sign in")).to_be_disabled()
