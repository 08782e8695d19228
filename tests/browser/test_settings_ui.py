"""Settings in a real browser: API keys, theme, password, signing out everywhere."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import PASSWORD, NewPage, screenshot
from tests.browser.ui import api_sign_in_status, api_status, main_nav, open_settings, signed_up

pytestmark = pytest.mark.browser


async def test_api_key_is_shown_once_then_only_its_prefix_and_revoke_works(
    hub_url: str, new_page: NewPage
) -> None:
    page = await new_page(hub_url)
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await signed_up(page, "keys@example.com", PASSWORD)
    await open_settings(page)
    await expect(page.get_by_text("You have no API keys yet.")).to_be_visible()

    await page.get_by_label("Name").fill("ci laptop")
    await page.get_by_role("button", name="Create key").click()
    key_box = page.get_by_label("Your new API key")
    await expect(key_box).to_have_value(re.compile(r"^lh_[\w-]{20,}$"))
    await expect(key_box).to_be_focused()
    key = await key_box.input_value()
    await page.get_by_role("button", name="Copy key").click()
    await expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert await page.evaluate("navigator.clipboard.readText()") == key
    await screenshot(page, "settings-new-key")
    assert await api_status(hub_url, "/api/auth/me", api_key=key) == 200

    await page.get_by_role("button", name="Done, I\u2019ve saved it").click()
    await expect(key_box).to_have_count(0)
    item = page.get_by_role("listitem", name="ci laptop")
    await expect(item.get_by_label("Key prefix")).to_have_text(f"{key[:10]}…")
    await expect(item.get_by_text("Active")).to_be_visible()
    assert key not in await page.content()
    # Still only the prefix after a reload: the full key is gone for good.
    await page.reload()
    await expect(item.get_by_label("Key prefix")).to_have_text(f"{key[:10]}…")
    assert key not in await page.content()

    await item.get_by_role("button", name="Revoke ci laptop").click()
    dialog = page.get_by_role("dialog", name="Revoke “ci laptop”?")
    await expect(dialog).to_be_visible()
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_be_hidden()
    await expect(item.get_by_text("Active")).to_be_visible()

    await item.get_by_role("button", name="Revoke ci laptop").click()
    await dialog.get_by_role("button", name="Revoke key").click()
    await expect(dialog).to_be_hidden()
    await expect(item.get_by_text("Revoked")).to_be_visible()
    await expect(item.get_by_role("button")).to_have_count(0)
    assert await api_status(hub_url, "/api/auth/me", api_key=key) == 401
    await screenshot(page, "settings")


async def test_theme_choice_sets_the_html_attribute_and_persists(
    hub_url: str, new_page: NewPage
) -> None:
    page = await new_page(hub_url, color_scheme="dark")
    html = page.locator("html")
    await page.goto("/")
    # "System" by default, following the (emulated) device preference, before any sign-in.
    await expect(html).to_have_attribute("data-theme", "dark")
    await signed_up(page, "theme@example.com", PASSWORD)
    await open_settings(page)
    await expect(page.get_by_label("System")).to_be_checked()

    await page.get_by_label("Light").check()
    await expect(html).to_have_attribute("data-theme", "light")
    await expect(html).to_have_attribute("data-theme-preference", "light")
    await page.reload()
    await expect(page.get_by_label("Light")).to_be_checked()
    await expect(html).to_have_attribute("data-theme", "light")

    await page.get_by_label("Dark").check()
    await expect(html).to_have_attribute("data-theme", "dark")
    background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    red, green, blue = (int(v) for v in re.findall(r"\d+", background)[:3])
    assert red + green + blue < 3 * 64, f"the dark theme's background is {background}"
    await screenshot(page, "settings-dark")

    await page.get_by_label("System").check()
    await page.emulate_media(color_scheme="light")
    await expect(html).to_have_attribute("data-theme", "light")
    await page.emulate_media(color_scheme="dark")
    await expect(html).to_have_attribute("data-theme", "dark")


async def test_password_change_keeps_this_session_and_needs_the_current_password(
    hub_url: str, new_page: NewPage
) -> None:
    page = await new_page(hub_url)
    await signed_up(page, "pw@example.com", PASSWORD)
    await open_settings(page)
    section = page.get_by_role("region", name="Password")

    await section.get_by_label("Current password").fill("wrong password!")
    await section.get_by_label("New password", exact=True).fill("a brand new secret")
    await section.get_by_label("Confirm new password").fill("a brand new secret")
    await section.get_by_role("button", name="Change password").click()
    await expect(section.get_by_role("alert")).to_have_text("Your current password is wrong.")

    await section.get_by_label("Current password").fill(PASSWORD)
    await section.get_by_role("button", name="Change password").click()
    await expect(section.get_by_role("status")).to_have_text(
        "Password changed. Your other sessions were signed out."
    )
    # This session carries on (with its new CSRF token): a write still works.
    await page.get_by_label("Name").fill("after the change")
    await page.get_by_role("button", name="Create key").click()
    await expect(page.get_by_label("Your new API key")).to_have_value(re.compile(r"^lh_"))
    assert await api_sign_in_status(hub_url, "pw@example.com", "a brand new secret") == 200
    assert await api_sign_in_status(hub_url, "pw@example.com", PASSWORD) == 401


async def test_sign_out_everywhere_ends_every_session(hub_url: str, new_page: NewPage) -> None:
    laptop = await new_page(hub_url)
    await signed_up(laptop, "two@example.com", PASSWORD)
    phone = await new_page(hub_url)
    await phone.goto("/signin")
    await phone.get_by_label("Email").fill("two@example.com")
    await phone.get_by_label("Password").fill(PASSWORD)
    await phone.get_by_role("button", name="Sign in").click()
    await expect(main_nav(phone)).to_be_visible()

    await open_settings(laptop)
    await laptop.get_by_role("button", name="Sign out everywhere").click()
    dialog = laptop.get_by_role("dialog", name="Sign out everywhere?")
    await dialog.get_by_role("button", name="Sign out everywhere").click()
    await expect(laptop.get_by_role("heading", name="Sign in")).to_be_visible()
    await expect(laptop.get_by_role("status")).to_have_text("You are signed out on every device.")

    # The other device finds out on its next request and shows sign-in again.
    await open_settings_expecting_sign_in(phone)


async def open_settings_expecting_sign_in(page: Page) -> None:
    await main_nav(page).get_by_role("link", name="Settings").click()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await expect(page.get_by_role("status")).to_have_text(
        "Your session has ended. Sign in again to continue."
    )
    await expect(page).to_have_url(re.compile(r"/settings$"))
