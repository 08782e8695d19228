"""Steps through the UI shared by the browser tests, written the way a person would do them."""

from __future__ import annotations

import aiohttp
from playwright.async_api import Locator, Page, expect


def main_nav(page: Page) -> Locator:
    return page.get_by_role("navigation", name="Main")


async def show_sidebar(page: Page) -> None:
    """Opens the sidebar where it is hidden (the drawer on a phone, or collapsed)."""
    toggle = page.get_by_role("button", name="Chats", exact=True)
    if await toggle.count() and await toggle.get_attribute("aria-expanded") == "false":
        await toggle.click()
    await expect(main_nav(page)).to_be_visible()


async def sign_up(page: Page, email: str, password: str, display_name: str = "") -> None:
    """Fills the sign-up form (the page must show it) and submits it."""
    await page.get_by_label("Email").fill(email)
    if display_name:
        await page.get_by_label("Display name").fill(display_name)
    await page.get_by_label("Password", exact=True).fill(password)
    await page.get_by_label("Confirm password").fill(password)
    await page.get_by_role("button", name="Create account").click()


async def sign_in(page: Page, email: str, password: str) -> None:
    """Fills the sign-in form (the page must show it) and submits it."""
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()


async def signed_up(page: Page, email: str, password: str, display_name: str = "") -> None:
    """Opens the sign-up screen, signs up and waits until the app shows."""
    await page.goto("/signup")
    await sign_up(page, email, password, display_name)
    await expect(page.get_by_role("heading", name="New chat", level=1)).to_be_visible()


async def open_settings(page: Page) -> None:
    await show_sidebar(page)
    await main_nav(page).get_by_role("link", name="Settings").click()
    await expect(page.get_by_role("heading", name="Settings", level=1)).to_be_visible()


async def open_admin(page: Page, section: str = "Users") -> None:
    await show_sidebar(page)
    await main_nav(page).get_by_role("link", name="Admin").click()
    await (
        page.get_by_role("navigation", name="Admin sections")
        .get_by_role("link", name=section)
        .click()
    )
    await expect(page.get_by_role("heading", name=section, level=2)).to_be_visible()


async def api_sign_up(base_url: str, email: str, password: str) -> int:
    """Signs up over HTTP (no browser); returns the status."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{base_url}/api/auth/signup", json={"email": email, "password": password}
        ) as response,
    ):
        return response.status


async def api_status(base_url: str, path: str, *, api_key: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{base_url}{path}", headers=headers) as response,
    ):
        return response.status


async def api_sign_in_status(base_url: str, email: str, password: str) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{base_url}/api/auth/login", json={"email": email, "password": password}
        ) as response,
    ):
        return response.status


# -- chat ------------------------------------------------------------------------------------


def composer(page: Page) -> Locator:
    return page.get_by_label("Message", exact=True)


def answers(page: Page) -> Locator:
    return page.get_by_role("article", name="Assistant")


def questions(page: Page) -> Locator:
    return page.get_by_role("article", name="You")


def sidebar(page: Page) -> Locator:
    return page.get_by_role("complementary", name="Chats")


async def models_ready(page: Page, model: str = "llama3.2:1b") -> None:
    """Waits until the model picker offers `model` (the hub lists its provider's models)."""
    picker = page.get_by_label("Model", exact=True)
    await expect(picker.locator("option", has_text=model)).to_have_count(1)


async def send(page: Page, text: str) -> None:
    """Types into the composer and presses Enter (which sends)."""
    box = composer(page)
    await box.fill(text)
    await box.press("Enter")


async def new_chat(page: Page) -> None:
    await sidebar(page).get_by_role("link", name="New chat").first.click()
    await expect(page.get_by_role("heading", name="New chat", level=1)).to_be_visible()
