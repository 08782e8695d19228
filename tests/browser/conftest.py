"""Browser end-to-end tests: a real `llmhub serve` on a throwaway PostgreSQL, driven by Chromium.

Every test gets its own freshly migrated database (the `database_url` fixture) and its own
`llmhub serve` subprocess, so the first sign-up in each test becomes the admin. One Chromium is
shared by the session; each page gets its own browser context (own cookies and storage).

Chromium is Debian's `/usr/bin/chromium` (never a Playwright-downloaded one). Without it the
tests skip, unless `LLMHUB_REQUIRE_BROWSER=1`, which turns the skip into a failure (CI).

Every page is watched: console errors, uncaught exceptions, CSP violations, any 5xx response
and any `csrf_failed` answer fail the test. The only console errors tolerated are Chromium's
"Failed to load resource" lines for 4xx answers from `/api/` (a signed-out `/api/auth/me`,
a wrong password), which the UI handles by design.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Error,
    Page,
    Response,
    async_playwright,
    expect,
)

from tests.fakes.ollama import FakeModel, FakeOllama
from tests.serve import serve

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Read at import: the root conftest strips LLMHUB_* variables from each test's environment.
REQUIRE_BROWSER = os.environ.get("LLMHUB_REQUIRE_BROWSER") == "1"
HAVE_CHROMIUM = CHROMIUM.exists()
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
SECRET_KEY = "browser-test-secret-key-" + "x" * 32
PASSWORD = "correct horse battery"

# Chromium logs every non-2xx fetch as a console error; 4xx answers from the API are expected.
_EXPECTED_API_4XX = re.compile(
    r"^Failed to load resource: the server responded with a status of 4\d\d\b"
)
# Report CSP violations from inside the page too (Chromium also logs them to the console).
_CSP_LISTENER = """
document.addEventListener('securitypolicyviolation', (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.__llmhubCspViolation(
    `${e.violatedDirective} blocked ${e.blockedURI || 'inline code'} (${where})`
  );
});
"""

expect.set_options(timeout=10_000)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        reason = (
            f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium) "
            "to run the browser tests"
        )
        if REQUIRE_BROWSER:
            pytest.fail(f"LLMHUB_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


class StartHub(Protocol):
    def __call__(self, **env: str) -> Awaitable[str]: ...


@pytest.fixture
async def start_hub(
    database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[StartHub]:
    """Starts `llmhub serve` on this test's database; extra LLMHUB_* settings as keywords."""
    async with AsyncExitStack() as stack:
        servers = []

        async def start(**env: str) -> str:
            data_dir = tmp_path / f"data{len(servers)}"
            data_dir.mkdir()
            served = await stack.enter_async_context(
                serve(
                    env={
                        "LLMHUB_DATABASE_URL": database_url,
                        "LLMHUB_DATA_DIR": str(data_dir),
                        "LLMHUB_SECRET_KEY": SECRET_KEY,
                        "LLMHUB_OLLAMA__URL": "http://127.0.0.1:9",
                        **env,
                    }
                )
            )
            servers.append(served)
            return served.url

        try:
            yield start
        finally:
            for served in servers:
                request.node.add_report_section("teardown", "llmhub serve", served.stderr[-20_000:])


@pytest.fixture
async def hub_url(start_hub: StartHub) -> str:
    """A hub with the default (open) sign-up policy."""
    return await start_hub()


MODEL = "llama3.2:1b"  # model ids as /api/models lists them (local mode: unprefixed)
PULLABLE = "tinyllama:latest"


@pytest.fixture
async def fake_ollama() -> AsyncIterator[FakeOllama]:
    """A fake Ollama in this test's event loop (the Playwright API here is async too), with
    one chat model and one model that can be pulled. Tests script replies and `chunk_delay`."""
    async with FakeOllama(
        [FakeModel("llama3.2:1b", capabilities=("completion", "thinking"))],
        pullable=[FakeModel(PULLABLE, size=637_700_138, parameter_size="1.1B")],
    ) as fake:
        yield fake


@pytest.fixture
async def chat_hub_url(start_hub: StartHub, fake_ollama: FakeOllama) -> str:
    """A hub whose Ollama is the fake."""
    return await start_hub(LLMHUB_OLLAMA__URL=fake_ollama.url)


@dataclass
class PageWatch:
    problems: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        url = message.location.get("url", "")
        if _EXPECTED_API_4XX.match(message.text) and "/api/" in url:
            return
        self.problems.append(f"console error: {message.text} ({url})")

    async def on_response(self, response: Response) -> None:
        if response.status >= 500:
            self.problems.append(f"HTTP {response.status} from {response.url}")
        elif response.status == 403 and "application/json" in (
            response.headers.get("content-type") or ""
        ):
            try:
                body: Any = json.loads(await response.text())
            except (Error, ValueError):
                return
            if isinstance(body, dict) and body.get("error", {}).get("code") == "csrf_failed":
                self.problems.append(f"csrf_failed from {response.request.method} {response.url}")


NewPage = Callable[..., Awaitable[Page]]


@pytest.fixture
async def new_page(browser: Browser) -> AsyncIterator[NewPage]:
    """Opens a page in a fresh browser context (own cookies), watched for errors."""
    watch = PageWatch()
    async with AsyncExitStack() as stack:

        async def make(
            base_url: str, *, width: int = 1280, height: int = 860, color_scheme: str = "light"
        ) -> Page:
            context = await browser.new_context(
                base_url=base_url,
                viewport={"width": width, "height": height},
                color_scheme=color_scheme,  # type: ignore[arg-type]
                locale="en-US",
                timezone_id="UTC",
            )
            stack.push_async_callback(context.close)
            await context.expose_function(
                "__llmhubCspViolation", lambda text: watch.problems.append(f"CSP violation: {text}")
            )
            await context.add_init_script(script=_CSP_LISTENER)
            page = await context.new_page()
            page.on("console", watch.on_console)
            page.on("pageerror", lambda exc: watch.problems.append(f"uncaught error: {exc}"))
            page.on("response", watch.on_response)
            return page

        yield make
    assert not watch.problems, "the browser reported problems:\n" + "\n".join(watch.problems)


async def screenshot(page: Page, name: str) -> None:
    """Saves what the viewport shows to artifacts/screenshots/<name>.png (a CI artifact).

    The viewport, not the full page: the app scrolls inside its panes, not the document.
    Animations are finished first (a drawer caught mid-slide says nothing)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / f"{name}.png", animations="disabled")
