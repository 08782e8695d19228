"""Serves the built UI: hashed assets cached forever, index.html never, SPA routes to index."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from .resources import STATIC_DIR

_IMMUTABLE = "public, max-age=31536000, immutable"
_NO_CACHE = "no-cache"
_NOT_SPA = ("/api/", "/v1/", "/health/", "/assets/")


class SpaStaticFiles(StaticFiles):
    def __init__(self) -> None:
        super().__init__(directory=STATIC_DIR, html=True, check_dir=False)

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            response = await super().get_response(path, scope)
        except HTTPException as exc:
            path_asked = scope["path"]
            if exc.status_code != 404 or path_asked.startswith(_NOT_SPA) or path_asked == "/health":
                raise
            response = await super().get_response("index.html", scope)
        is_asset = path.startswith("assets/") and response.status_code in (200, 304)
        response.headers["cache-control"] = _IMMUTABLE if is_asset else _NO_CACHE
        return response
