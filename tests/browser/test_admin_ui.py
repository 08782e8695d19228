"""Admin screens in a real browser: users, default limits, health; and the 360 px layout."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import PASSWORD, NewPage, screenshot
from tests.browser.ui import (
    api_sign_in_status,
    api_sign_up,
    main_nav,
    open_admin,
    open_settings,
    show_sidebar,
    signed_up,
)

pytestmark = pytest.mark.browser


async def test_admin_manages_users(hub_url: str, new_page: NewPage) -> None:
    page = await new_page(hub_url)
    await signed_up(page, "root@example.com", PASSWORD, display_name="Root")
    assert await api_sign_up(hub_url, "dev@example.com", PASSWORD) == 201
    assert await api_sign_up(hub_url, "temp@example.com", PASSWORD) == 201
    await open_admin(page, "Users")

    me = page.get_by_role("listitem", name="root@example.com")
    await expect(me.get_by_text("You", exact=True)).to_be_visible()
    await expect(me.get_by_role("button", name="Delete")).to_be_disabled()
    dev = page.get_by_role("listitem", name="dev@example.com")
    role = dev.get_by_label("Role of dev@example.com")
    await expect(role).to_have_value("user")
    await screenshot(page, "admin-users")

    status = dev.get_by_role("status")
    await role.select_option("admin")
    await expect(status).to_have_text("Role changed to Admin.")
    await role.select_option("user")
    await expect(status).to_have_text("Role changed to User.")
    await expect(role).to_have_value("user")

    await dev.get_by_role("button", name="Disable").click()
    await expect(status).to_have_text("Disabled: their sessions were ended.")
    await expect(dev.get_by_text("Disabled", exact=True)).to_be_visible()
    assert await api_sign_in_status(hub_url, "dev@example.com", PASSWORD) == 403
    await dev.get_by_role("button", name="Enable").click()
    await expect(status).to_have_text("Enabled: they can sign in again.")
    await expect(dev.get_by_text("Disabled", exact=True)).to_have_count(0)

    await dev.get_by_role("button", name="Reset password").click()
    await dev.get_by_label("New password for dev@example.com").fill("reset by the admin")
    await dev.get_by_role("button", name="Set password", exact=True).click()
    await expect(dev.get_by_role("status")).to_have_text(
        "Password reset. Their sessions were signed out."
    )
    assert await api_sign_in_status(hub_url, "dev@example.com", "reset by the admin") == 200

    temp = page.get_by_role("listitem", name="temp@example.com")
    await temp.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog", name="Delete temp@example.com?")
    await dialog.get_by_role("button", name="Delete user").click()
    await expect(temp).to_have_count(0)
    await page.reload()
    await expect(dev).to_be_visible()
    await expect(temp).to_have_count(0)


async def test_admin_sets_default_limits_and_sees_health(hub_url: str, new_page: NewPage) -> None:
    page = await new_page(hub_url)
    await signed_up(page, "ops@example.com", PASSWORD)
    await open_admin(page, "Limits")
    rpm = page.get_by_label("Requests per minute")
    await expect(rpm).to_have_value(re.compile(r"^\d+$"))  # the configured default
    await rpm.fill("30")
    await page.get_by_label("Tokens per day").fill("100000")
    await page.get_by_role("button", name="Save limits").click()
    await expect(page.get_by_role("status")).to_have_text("Limits saved.")
    await page.reload()
    await expect(page.get_by_label("Requests per minute")).to_have_value("30")
    await expect(page.get_by_label("Tokens per day")).to_have_value("100000")
    await screenshot(page, "admin-limits")

    await (
        page.get_by_role("navigation", name="Admin sections")
        .get_by_role("link", name="Health")
        .click()
    )
    table = page.get_by_role("table", name="Component health")
    await expect(table.get_by_role("row", name=re.compile(r"^Database ok"))).to_be_visible()
    await expect(table.get_by_role("row", name=re.compile(r"^ollama unavailable"))).to_be_visible()
    await expect(page.get_by_text("Degraded")).to_be_visible()
    await screenshot(page, "admin-health")

    # The other sections are routed too.
    for section in ("Models", "Usage"):
        await (
            page.get_by_role("navigation", name="Admin sections")
            .get_by_role("link", name=section)
            .click()
        )
        await expect(page.get_by_role("heading", name=section, level=2)).to_be_visible()
        await expect(page).to_have_url(re.compile(rf"/admin/{section.lower()}$"))


async def assert_fits(page: Page, width: int) -> None:
    overflow = await page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= width, f"{page.url} is {overflow}px wide at a {width}px viewport"


async def test_main_screens_fit_a_360px_screen_and_show_focus(
    hub_url: str, new_page: NewPage
) -> None:
    page = await new_page(hub_url, width=360, height=740)
    await page.goto("/")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await assert_fits(page, 360)
    await screenshot(page, "mobile-sign-in")

    # Keyboard focus is visible: the first Tab lands on the "Sign in" tab with an outline.
    await page.keyboard.press("Tab")
    focused = page.get_by_role("link", name="Sign in")
    await expect(focused).to_be_focused()
    outline = await focused.evaluate("el => getComputedStyle(el).outlineStyle")
    assert outline != "none"

    await signed_up(page, "small@example.com", PASSWORD)
    await assert_fits(page, 360)
    await expect(page.get_by_role("button", name="Chats")).to_be_visible()
    await screenshot(page, "mobile-chat")
    await open_settings(page)
    await page.get_by_role("button", name="Create key").click()
    await expect(page.get_by_label("Your new API key")).to_be_visible()
    await assert_fits(page, 360)
    await screenshot(page, "mobile-settings")
    await open_admin(page, "Users")
    await expect(page.get_by_role("listitem", name="small@example.com")).to_be_visible()
    await assert_fits(page, 360)
    await screenshot(page, "mobile-admin-users")
    await show_sidebar(page)
    assert await main_nav(page).get_by_role("link", name="Admin").is_visible()
