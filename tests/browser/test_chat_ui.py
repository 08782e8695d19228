"""The chat screen in a real browser against a real `llmhub serve` and a fake Ollama:
streaming, stop, reattach after reload, regenerate and branches, edit-and-resend, rename,
search, delete, inert model output, isolation between users, and the 360 px layout."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Dialog, Page, expect

from tests.browser.conftest import MODEL, PASSWORD, NewPage, screenshot
from tests.browser.ui import (
    answers,
    composer,
    models_ready,
    new_chat,
    questions,
    send,
    sidebar,
    signed_up,
)
from tests.fakes.ollama import FakeOllama

pytestmark = pytest.mark.browser

LONG_REPLY = " ".join(f"word{i}" for i in range(1, 61)) + " THE-END"


def script(fake: FakeOllama, reply: str, *, delay: float = 0.0, thinking: str = "") -> None:
    fake.script("llama3.2:1b", reply, thinking=thinking)
    fake.chunk_delay = delay


async def ready(page: Page, hub: str, email: str = "ada@example.com") -> None:
    await signed_up(page, email, PASSWORD)
    await models_ready(page)


async def test_send_stream_regenerate_branches_and_edit(
    chat_hub_url: str, new_page: NewPage, fake_ollama: FakeOllama
) -> None:
    page = await new_page(chat_hub_url)
    await ready(page, chat_hub_url)
    await expect(page.get_by_label("Model", exact=True)).to_have_value(MODEL)
    script(
        fake_ollama,
        "Here is **bold** and code:\n\n```python\nprint('hi')\n```\n\nDone streaming.",
        delay=0.05,
        thinking="Let me think about this",
    )
    await send(page, "Hello there")
    await expect(composer(page)).to_have_value("")
    await expect(questions(page)).to_have_text(re.compile("Hello there"))
    answer = answers(page).first
    # While it streams: the Stop button replaces Send.
    await expect(page.get_by_role("button", name="Stop")).to_be_visible()
    await expect(answer.locator("strong")).to_have_text("bold")
    await expect(answer).to_contain_text("Done streaming.")
    await expect(page.get_by_role("button", name="Send")).to_be_visible()
    # Markdown, highlighted code with a copy button, the thinking block, the stats.
    await expect(answer.locator("pre code.hljs")).to_contain_text("print('hi')")
    await expect(answer.get_by_role("button", name="Copy code")).to_be_visible()
    thinking = answer.locator("details.thinking")
    await expect(thinking.locator("summary")).to_have_text("Thinking")
    await thinking.locator("summary").click()
    await expect(thinking).to_contain_text("Let me think about this")
    await expect(answer.get_by_test_id("message-stats")).to_contain_text(
        re.compile(r"\d+ tokens.*tok/s.*TTFT \d+ ms")
    )
    # The chat got its URL and a place in the sidebar.
    await expect(page).to_have_url(re.compile(r"/c/[0-9a-f-]{36}$"))
    await expect(sidebar(page).get_by_role("listitem")).to_have_count(1)
    await screenshot(page, "chat")

    # Regenerate: a second answer beside the first, shown as branch 2 of 2.
    script(fake_ollama, "A different answer.", delay=0.02)
    await answer.get_by_role("button", name="Regenerate").click()
    await expect(answers(page)).to_have_text(re.compile("A different answer."))
    branches = answers(page).get_by_role("group", name="Branch 2 of 2")
    await expect(branches).to_contain_text("2/2")
    await branches.get_by_role("button", name="Previous branch").click()
    await expect(answers(page)).to_contain_text("Done streaming.")
    await expect(answers(page).get_by_role("group", name="Branch 1 of 2")).to_be_visible()
    # The branch shown is remembered by the server.
    await page.reload()
    await expect(answers(page)).to_contain_text("Done streaming.")
    await answers(page).get_by_role("button", name="Next branch").click()
    await expect(answers(page)).to_have_text(re.compile("A different answer."))

    # Edit-and-resend: a new branch at the question, the old one kept.
    script(fake_ollama, "Answer to the edit.")
    await questions(page).get_by_role("button", name="Edit").click()
    editor = page.get_by_label("Edit your message")
    await editor.fill("Hello again, edited")
    await editor.press("Enter")
    await expect(answers(page)).to_have_text(re.compile("Answer to the edit."))
    await expect(questions(page)).to_contain_text("Hello again, edited")
    await expect(questions(page).get_by_role("group", name="Branch 2 of 2")).to_be_visible()
    await questions(page).get_by_role("button", name="Previous branch").click()
    await expect(questions(page)).to_contain_text("Hello there")
    await expect(answers(page)).to_have_text(re.compile("A different answer."))


async def test_stop_keeps_the_partial_answer(
    chat_hub_url: str, new_page: NewPage, fake_ollama: FakeOllama
) -> None:
    page = await new_page(chat_hub_url)
    await ready(page, chat_hub_url)
    script(fake_ollama, LONG_REPLY, delay=0.1)
    await send(page, "Count for me")
    answer = answers(page).first
    await expect(answer).to_contain_text("word3")
    await composer(page).press("Escape")  # Esc stops, like the Stop button
    await expect(answer.get_by_text("Stopped", exact=True)).to_be_visible()
    await expect(page.get_by_role("button", name="Send")).to_be_visible()
    partial = await answer.locator(".markdown").inner_text()
    assert "word1" in partial and "THE-END" not in partial
    await page.reload()
    await expect(answers(page).get_by_text("Stopped", exact=True)).to_be_visible()
    assert await answers(page).locator(".markdown").inner_text() == partial


async def test_reload_reattaches_to_a_running_answer(
    chat_hub_url: str, new_page: NewPage, fake_ollama: FakeOllama
) -> None:
    page = await new_page(chat_hub_url)
    await ready(page, chat_hub_url)
    script(fake_ollama, LONG_REPLY, delay=0.06)
    await send(page, "Count slowly")
    await expect(answers(page)).to_contain_text("word5")
    await expect(page).to_have_url(re.compile(r"/c/"))
    await page.reload()
    # Back on the same chat, following the same answer to its end.
    await expect(page.get_by_role("button", name="Stop")).to_be_visible()
    await expect(answers(page)).to_contain_text("THE-END", timeout=20_000)
    await expect(page.get_by_role("button", name="Send")).to_be_visible()
    text = await answers(page).locator(".markdown").inner_text()
    assert text.count("word5 ") == 1  # replayed once, not appended twice
    await expect(answers(page).get_by_test_id("message-stats")).to_be_visible()


async def test_rename_pin_search_and_delete(
    chat_hub_url: str, new_page: NewPage, fake_ollama: FakeOllama
) -> None:
    page = await new_page(chat_hub_url)
    await ready(page, chat_hub_url)
    script(fake_ollama, "Penguins live in the southern hemisphere.")
    await send(page, "Tell me about penguins")
    await expect(answers(page)).to_contain_text("Penguins live")
    await new_chat(page)
    script(fake_ollama, "Volcanoes erupt molten rock.")
    await send(page, "Tell me about volcanoes")
    await expect(answers(page)).to_contain_text("Volcanoes erupt")
    items = sidebar(page).get_by_role("listitem")
    await expect(items).to_have_count(2)
    # After a chat's first answer the server titles it (the fake model answers the same).
    first = sidebar(page).get_by_role("listitem", name="Penguins live in the southern hemisphere")
    await expect(first).to_be_visible()
    await expect(
        sidebar(page).get_by_role("listitem", name="Volcanoes erupt molten rock")
    ).to_be_visible()

    # Rename the first chat.
    await first.get_by_role("button", name=re.compile("^Actions for")).click()
    await first.get_by_role("button", name="Rename").click()
    title = sidebar(page).get_by_label(re.compile("^New title for"))
    await title.fill("Bird facts")
    await title.press("Enter")
    renamed = sidebar(page).get_by_role("listitem", name="Bird facts")
    await expect(renamed).to_be_visible()
    # Pin it: it moves to the Pinned group.
    await renamed.get_by_role("button", name="Actions for Bird facts").click()
    await renamed.get_by_role("button", name="Pin").click()
    pinned = sidebar(page).get_by_role("list", name="Pinned")
    await expect(pinned.get_by_role("listitem", name="Bird facts")).to_be_visible()
    await page.reload()
    await expect(pinned.get_by_role("listitem", name="Bird facts")).to_be_visible()

    # Live search finds the message and leads to its chat.
    search = page.get_by_role("searchbox", name="Search chats")
    await search.fill("pengu")
    results = sidebar(page).get_by_role("list", name="Search results")
    await expect(results.get_by_role("link")).to_have_count(1)
    await expect(results.locator("mark").first).to_contain_text(re.compile("pengu", re.IGNORECASE))
    await screenshot(page, "chat-search")
    await results.get_by_role("link").click()
    await expect(page.get_by_role("heading", name="Bird facts", level=1)).to_be_visible()
    await expect(questions(page)).to_contain_text("Tell me about penguins")
    await search.fill("")
    await expect(sidebar(page).get_by_role("listitem")).to_have_count(2)

    # Delete, after confirming.
    await renamed.get_by_role("button", name="Actions for Bird facts").click()
    await renamed.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog", name="Delete “Bird facts”?")
    await dialog.get_by_role("button", name="Delete chat").click()
    await expect(renamed).to_have_count(0)
    await expect(page).to_have_url(re.compile(r"/$"))
    await expect(page.get_by_role("heading", name="New chat", level=1)).to_be_visible()
    await page.reload()
    await expect(sidebar(page).get_by_role("listitem")).to_have_count(1)
    await search.fill("penguins")
    await expect(sidebar(page).get_by_text("No matches.")).to_be_visible()


async def test_model_output_renders_inert(
    chat_hub_url: str, new_page: NewPage, fake_ollama: FakeOllama
) -> None:
    page = await new_page(chat_hub_url)
    dialogs: list[str] = []

    async def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", on_dialog)
    await ready(page, chat_hub_url)
    scripts_before = await page.locator("script").count()
    script(
        fake_ollama,
        "Look: <img src=x onerror=alert(1)> and <script>alert(2)</script>\n\n"
        '[click me](javascript:alert(3)) <a href="javascript:alert(4)">raw link</a> '
        '<b onmouseover="alert(5)">hover</b> <p style="position:fixed">styled</p>',
    )
    await send(page, "Show me something dangerous")
    answer = answers(page).first
    await expect(answer).to_contain_text("<script>alert(2)</script>")  # shown as text
    await expect(answer).to_contain_text("<img src=x onerror=alert(1)>")
    body = answer.locator(".markdown")
    assert await body.locator("script, img, iframe, [onerror], [onmouseover], [style]").count() == 0
    assert await page.locator("script").count() == scripts_before
    link = body.get_by_text("click me")
    assert not re.match(r"(?i)\s*javascript:", await link.get_attribute("href") or "")
    await link.click()
    await body.get_by_text("hover").hover()
    await page.reload()
    await expect(answers(page)).to_contain_text("<img src=x onerror=alert(1)>")
    assert await answers(page).locator(".markdown img, .markdown script").count() == 0
    assert dialogs == []


async def test_a_second_user_cannot_see_the_first_users_chats(
    chat_hub_url: str, new_page: NewPage, fake_ollama: FakeOllama
) -> None:
    alice = await new_page(chat_hub_url)
    await ready(alice, chat_hub_url, "alice@example.com")
    script(fake_ollama, "Alice's secret answer about kumquats.")
    await send(alice, "My secret kumquat question")
    await expect(answers(alice)).to_contain_text("kumquats")
    await expect(alice).to_have_url(re.compile(r"/c/"))
    alice_chat = alice.url

    bob = await new_page(chat_hub_url)
    await ready(bob, chat_hub_url, "bob@example.com")
    await expect(sidebar(bob).get_by_text("No chats yet.")).to_be_visible()
    await bob.get_by_role("searchbox", name="Search chats").fill("kumquat")
    await expect(sidebar(bob).get_by_text("No matches.")).to_be_visible()
    await bob.goto(alice_chat)
    await expect(bob.get_by_role("alert")).to_contain_text(
        "doesn\u2019t exist, or isn\u2019t yours"
    )
    await expect(bob.get_by_text("kumquat")).to_have_count(0)


async def test_chat_at_360px(chat_hub_url: str, new_page: NewPage, fake_ollama: FakeOllama) -> None:
    page = await new_page(chat_hub_url, width=360, height=740)
    await ready(page, chat_hub_url)
    script(fake_ollama, "A short answer with a long line: " + "x" * 120)
    await send(page, "Hi from a phone")
    await expect(answers(page)).to_contain_text("A short answer")
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    toggle = page.get_by_role("button", name="Chats", exact=True)
    await expect(toggle).to_be_visible()
    await expect(composer(page)).to_be_visible()
    await expect(page.get_by_role("button", name="Send")).to_be_visible()
    await screenshot(page, "chat-360")
    await toggle.click()
    await expect(sidebar(page).get_by_role("link", name="New chat").first).to_be_visible()
    await screenshot(page, "chat-360-sidebar")


async def test_per_chat_settings_reach_the_model(
    chat_hub_url: str, new_page: NewPage, fake_ollama: FakeOllama
) -> None:
    page = await new_page(chat_hub_url)
    await ready(page, chat_hub_url)
    script(fake_ollama, "Arr.")
    await page.get_by_role("button", name="Chat settings").click()
    await page.get_by_label("System prompt").fill("You are a pirate.")
    await page.get_by_label("Temperature").fill("0.3")
    await page.get_by_label("Max tokens").fill("64")
    await page.get_by_role("button", name="Save settings").click()
    await expect(page.get_by_text("Settings will apply to this new chat.")).to_be_visible()
    await page.get_by_role("button", name="Close", exact=True).click()
    await send(page, "First question")
    await expect(answers(page)).to_contain_text("Arr.")

    await page.get_by_role("button", name="Chat settings").click()
    await expect(page.get_by_label("System prompt")).to_have_value("You are a pirate.")
    await page.get_by_label("Max tokens").fill("32")
    await page.get_by_role("button", name="Save settings").click()
    await expect(page.get_by_text("Settings saved.")).to_be_visible()
    await send(page, "Second question")
    await expect(answers(page)).to_have_count(2)
    await expect(answers(page).nth(1)).to_contain_text("Arr.")

    def sent(text: str) -> dict:
        return next(
            c.body
            for c in fake_ollama.calls("/api/chat")
            if c.body["messages"][-1]["content"] == text
        )

    first, second = sent("First question"), sent("Second question")
    assert first["messages"][0] == {"role": "system", "content": "You are a pirate."}
    assert first["options"]["temperature"] == 0.3 and first["options"]["num_predict"] == 64
    assert second["messages"][0]["content"] == "You are a pirate."
    assert second["options"]["num_predict"] == 32
