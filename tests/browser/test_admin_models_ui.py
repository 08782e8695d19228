"""Admin → Models and Usage in a real browser, against the fake Ollama: provider health, a pull
with its progress bar reaching 100 %, enabling/disabling and deleting models, and usage by user
and by model."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from tests.browser.conftest import MODEL, PASSWORD, PULLABLE, NewPage, screenshot
from tests.browser.ui import answers, models_ready, open_admin, send, signed_up
from tests.fakes.ollama import FakeOllama

pytestmark = pytest.mark.browser


async def test_admin_pulls_toggles_and_deletes_models(
    chat_hub_url: str, new_page: NewPage, fake_ollama: FakeOllama
) -> None:
    page = await new_page(chat_hub_url)
    await signed_up(page, "root@example.com", PASSWORD)  # the first sign-up is the admin
    await models_ready(page)
    await open_admin(page, "Models")

    provider = page.get_by_role("listitem", name="Provider ollama")
    await expect(provider.get_by_text("online")).to_be_visible()
    catalog = page.get_by_role("list", name="Models of ollama")
    await expect(catalog.get_by_role("listitem", name=MODEL)).to_be_visible()

    # Pull: the bar moves with Ollama's progress and ends full.
    fake_ollama.chunk_delay = 0.15
    await page.get_by_label("Model name").fill(PULLABLE)
    await page.get_by_role("button", name="Pull", exact=True).click()
    bar = page.get_by_role("progressbar")
    await expect(bar).to_be_visible()
    await expect(page.get_by_test_id("pull-percent")).to_have_text("50%")
    await expect(page.get_by_test_id("pull-percent")).to_have_text("100%")
    await expect(bar).to_have_attribute("value", "100")
    await expect(page.get_by_text(f"Pulled {PULLABLE}.")).to_be_visible()
    pulled = catalog.get_by_role("listitem", name=PULLABLE)
    await expect(pulled).to_be_visible()
    await screenshot(page, "admin-models")
    fake_ollama.chunk_delay = 0

    # A pull of an unknown model fails visibly.
    await page.get_by_label("Model name").fill("no-such-model")
    await page.get_by_role("button", name="Pull", exact=True).click()
    await expect(page.get_by_role("alert")).to_contain_text("Pull failed")

    # Disabled models leave the chat picker.
    await pulled.get_by_label("Enabled").uncheck()
    await expect(page.get_by_text(f"Disabled {PULLABLE}.")).to_be_visible()
    await page.goto("/")
    picker = page.get_by_label("Model", exact=True)
    await expect(picker.locator("option", has_text=MODEL)).to_have_count(1)
    await expect(picker.locator("option", has_text=PULLABLE)).to_have_count(0)
    await open_admin(page, "Models")
    await pulled.get_by_label("Enabled").check()
    await expect(page.get_by_text(f"Enabled {PULLABLE}.")).to_be_visible()

    # Delete, after confirming: gone from Ollama; the catalog remembers it as not offered.
    await pulled.get_by_role("button", name="Delete").click()
    await (
        page.get_by_role("dialog", name=f"Delete {PULLABLE}?")
        .get_by_role("button", name="Delete model")
        .click()
    )
    await expect(page.get_by_text(f"Deleted {PULLABLE}.")).to_be_visible()
    await expect(pulled.get_by_text("not offered now")).to_be_visible()
    await expect(pulled.get_by_role("button", name="Delete")).to_have_count(0)
    assert PULLABLE not in fake_ollama.models


async def test_admin_sees_usage_by_user_and_model(
    chat_hub_url: str, new_page: NewPage, fake_ollama: FakeOllama
) -> None:
    admin = await new_page(chat_hub_url)
    await signed_up(admin, "root@example.com", PASSWORD)
    other = await new_page(chat_hub_url)
    await signed_up(other, "dev@example.com", PASSWORD)
    await models_ready(other)
    fake_ollama.script("llama3.2:1b", "Counted.")
    await send(other, "Count my tokens")
    await expect(answers(other)).to_contain_text("Counted.")

    await open_admin(admin, "Usage")
    by_user = admin.get_by_role("table", name="By user")
    await expect(by_user.get_by_role("row", name=re.compile(r"^dev@example\.com"))).to_be_visible()
    by_model = admin.get_by_role("table", name="By model")
    await expect(
        by_model.get_by_role("row", name=re.compile(rf"^{re.escape(MODEL)}"))
    ).to_be_visible()
    await screenshot(admin, "admin-usage")
