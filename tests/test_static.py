"""The built UI as the browser gets it: cache rules, SPA routes, and what is not the UI."""

from __future__ import annotations

import re

from llmhub.resources import STATIC_DIR
from tests.hub import Hub


async def test_index_is_never_cached_and_hashed_assets_forever(hub: Hub) -> None:
    client = hub.client()
    index = await client.get("/")
    assert index.status == 200 and index.headers["Content-Type"].startswith("text/html")
    assert index.headers["Cache-Control"] == "no-cache"
    assets = re.findall(r'(?:src|href)="(/assets/[^"]+)"', index.text)
    assert assets, "index.html references no hashed assets"
    for path in assets:
        asset = await client.get(path)
        assert asset.status == 200, path
        assert asset.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert (STATIC_DIR / "index.html").read_text() == index.text


async def test_app_routes_get_the_app_and_api_paths_do_not(hub: Hub) -> None:
    client = hub.client()
    for path in (
        "/c/0b7e3f8e-8f0e-4f4e-9b8a-2a6d0c1f0e11",
        "/settings",
        "/admin/users",
        "/healthy",
    ):
        page = await client.get(path)
        assert page.status == 200 and "<html" in page.text, path
        assert page.headers["Cache-Control"] == "no-cache"
    for path in ("/api/nope", "/v1/nope", "/assets/missing-abc123.js", "/health/nope"):
        missing = await client.get(path)
        assert missing.status == 404, path
        assert "<html" not in missing.text
    traversal = await client.get("/assets/..%2f..%2fpyproject.toml")
    assert traversal.status == 404 and "build-system" not in traversal.text
