"""The app shell in Chromium: the sidebar with long titles, one chat menu at a time that Esc
closes, archiving the open chat, and no polling once the session has ended.

One hub (and one fake Ollama) serves the whole module; each test signs up its own user.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import ConsoleMessage, Page, Request, expect

from tests.browser.conftest import PASSWORD, SECRET_KEY, NewPage, screenshot
from tests.browser.ui import answers, models_ready, send, sidebar, signed_up
from tests.fakes.ollama import FakeModel, FakeOllama
from tests.serve import serve

pytestmark = pytest.mark.browser

LONG_TITLE = "A very long chat title " + "that keeps going " * 11 + "to the end"


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeOllama]:
    async with FakeOllama([FakeModel("llama3.2:1b")]) as ollama:
        yield ollama


@pytest.fixture(scope="module")
async def hub(
    module_database_url: str, fake: FakeOllama, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    data_dir: Path = tmp_path_factory.mktemp("shell-hub")
    env = {
        "LLMHUB_DATABASE_URL": module_database_url,
        "LLMHUB_DATA_DIR": str(data_dir),
        "LLMHUB_SECRET_KEY": SECRET_KEY,
        "LLMHUB_OLLAMA__URL": fake.url,
    }
    async with serve(env=env) as served:
        yield served.url


@pytest.fixture(autouse=True)
def _fresh_fake(fake: FakeOllama) -> None:
    fake.reset()
    fake.script("llama3.2:1b", "An answer.")


async def chat_with(page: Page, text: str) -> None:
    await send(page, text)
    await expect(answers(page).last).to_contain_text("An answer.")
    await expect(page).to_have_url(re.compile(r"/c/"))


async def rename_open_chat(page: Page, title: str) -> None:
    item = sidebar(page).get_by_role("listitem").first
    await item.get_by_role("button", name=re.compile("^Actions for")).click()
    await item.get_by_role("button", name="Rename").click()
    box = sidebar(page).get_by_label(re.compile("^New title for"))
    await box.fill(title)
    await box.press("Enter")
    await expect(sidebar(page).get_by_role("listitem", name=title)).to_be_visible()


async def test_a_long_title_stays_inside_the_sidebar(hub: str, new_page: NewPage) -> None:
    """Defect 1: a 200-character title used to widen the sidebar's column past its box."""
    page = await new_page(hub, width=1440, height=900)
    await signed_up(page, "long@example.com", PASSWORD)
    await models_ready(page)
    await chat_with(page, "Hello")
    assert len(LONG_TITLE) >= 200
    await rename_open_chat(page, LONG_TITLE)

    bar = sidebar(page)
    box = await bar.bounding_box()
    assert box is not None
    overflow = await bar.evaluate(
        "el => Math.max(...[el, ...el.querySelectorAll('*')].map(e => e.scrollWidth - e.clientWidth"
        " > 1 && getComputedStyle(e).overflowX !== 'hidden' ? e.scrollWidth - e.clientWidth : 0))"
    )
    assert overflow == 0, "something in the sidebar scrolls sideways"
    item = bar.get_by_role("listitem", name=LONG_TITLE)
    for control in (
        bar.get_by_role("link", name="New chat"),
        bar.get_by_role("searchbox", name="Search chats"),
        item.get_by_role("button", name=f"Actions for {LONG_TITLE}"),
    ):
        await expect(control).to_be_visible()
        inner = await control.bounding_box()
        assert inner is not None
        assert inner["x"] >= box["x"] and inner["x"] + inner["width"] <= box["x"] + box["width"] + 1
    title = item.get_by_role("link")
    assert await title.evaluate(
        "el => el.querySelector('span:last-child') ?.scrollWidth > el.clientWidth"
    )
    await screenshot(page, "sidebar-long-title")


async def test_one_chat_menu_at_a_time_and_esc_closes_it(hub: str, new_page: NewPage) -> None:
    """Defect 7: menus stayed open together and ignored Esc."""
    page = await new_page(hub)
    await signed_up(page, "menus@example.com", PASSWORD)
    await models_ready(page)
    await chat_with(page, "First")
    await rename_open_chat(page, "First chat")
    await sidebar(page).get_by_role("link", name="New chat").click()
    await chat_with(page, "Second")
    await rename_open_chat(page, "Second chat")

    first = sidebar(page).get_by_role("listitem", name="First chat")
    second = sidebar(page).get_by_role("listitem", name="Second chat")
    await first.get_by_role("button", name="Actions for First chat").click()
    await expect(first.get_by_role("button", name="Rename")).to_be_visible()
    await second.get_by_role("button", name="Actions for Second chat").click()
    await expect(second.get_by_role("button", name="Rename")).to_be_visible()
    await expect(page.get_by_role("button", name="Rename")).to_have_count(1)

    await page.keyboard.press("Escape")
    await expect(page.get_by_role("button", name="Rename")).to_have_count(0)
    await expect(second.get_by_role("button", name="Actions for Second chat")).to_be_focused()


async def test_archiving_the_open_chat(hub: str, new_page: NewPage) -> None:
    """Defect 7: archiving the chat on screen logged Svelte's derived_inert warning."""
    page = await new_page(hub)
    warnings: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("warning", "error") and "svelte" in message.text.lower():
            warnings.append(message.text)

    page.on("console", on_console)
    await signed_up(page, "archive@example.com", PASSWORD)
    await models_ready(page)
    await chat_with(page, "Something to archive")
    await rename_open_chat(page, "To the archive")
    item = sidebar(page).get_by_role("listitem", name="To the archive")
    await item.get_by_role("button", name="Actions for To the archive").click()
    await item.get_by_role("button", name="Archive", exact=True).click()
    await expect(page.get_by_role("heading", name="New chat", level=1)).to_be_visible()
    await expect(sidebar(page).get_by_role("listitem", name="To the archive")).to_have_count(0)
    await page.evaluate("1")  # a round trip: console messages logged by now have arrived
    assert warnings == []

    # The archive has a heading of its own, and a way back.
    await sidebar(page).get_by_role("button", name="Archived chats").click()
    await expect(sidebar(page).get_by_role("heading", name="Archived")).to_be_visible()
    await expect(sidebar(page).get_by_role("listitem", name="To the archive")).to_be_visible()
    await sidebar(page).get_by_role("button", name="Back to chats").click()
    await expect(sidebar(page).get_by_role("heading", name="Archived")).to_have_count(0)


async def test_no_polling_after_the_session_ends(hub_url: str, new_page: NewPage) -> None:
    """Defect 7: with no model listed yet, the chat screen asks /api/models again every few
    seconds; after the session ended elsewhere it went on asking (401s) from the sign-in page."""
    page = await new_page(hub_url)
    await page.clock.install()
    await signed_up(page, "poll@example.com", PASSWORD)
    now = await page.evaluate("Date.now()")
    await page.clock.pause_at(now + 500)
    asked: list[str] = []

    def on_request(request: Request) -> None:
        if request.url.endswith("/api/models"):
            asked.append(request.url)

    page.on("request", on_request)
    await page.context.clear_cookies()  # the session ends (signed out elsewhere)
    await page.clock.run_for(3_500)
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    seen = len(asked)
    await page.clock.run_for(60_000)
    await page.evaluate("1")  # a round trip: requests the timers made have been reported
    assert len(asked) == seen, "the chat screen kept asking for models after signing out"
