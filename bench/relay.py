"""The baseline: the thinnest pass-through relay, Starlette + aiohttp, raw bytes.

No auth, no translation, no database: `POST /api/chat` is forwarded to the upstream and every
network read of its body becomes one downstream write. llmhub is measured against this, run the
same way (one uvicorn process, its default loop and HTTP parser, access log off).

    python -m bench.relay --upstream http://127.0.0.1:PORT --port PORT
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route


def create_relay(upstream: str) -> Starlette:
    session: aiohttp.ClientSession | None = None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal session
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        yield
        await session.close()

    async def chat(request: Request) -> Response:
        assert session is not None
        body = await request.body()
        upstream_response = await session.post(
            upstream + "/api/chat", data=body, headers={"Content-Type": "application/json"}
        )

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for data in upstream_response.content.iter_any():
                    yield data
            finally:
                upstream_response.release()  # back to the pool once fully read

        return StreamingResponse(
            relay(),
            status_code=upstream_response.status,
            media_type=upstream_response.headers.get("Content-Type"),
        )

    async def health(request: Request) -> Response:
        return Response(b"ok")

    return Starlette(
        routes=[Route("/api/chat", chat, methods=["POST"]), Route("/health", health)],
        lifespan=lifespan,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        create_relay(args.upstream.rstrip("/")),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
