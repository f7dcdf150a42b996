"""Serve an ASGI app with uvicorn inside the current event loop (benchmarks, tests, demo).

The socket is bound before the app is built, so the app can be told its own public URL (QStash
signs deliveries for exactly that URL).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import uvicorn
from starlette.types import ASGIApp

App = TypeVar("App", bound=ASGIApp)


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A TCP socket bound to `host:port` (0: a free port), not listening yet.

    Created with `IPPROTO_TCP` and `TCP_NODELAY` (which the connections it accepts inherit):
    asyncio turns Nagle's algorithm off only on sockets whose protocol is TCP, and with it on,
    every response whose headers and body uvicorn writes separately waited ~40 ms for the
    client's delayed ACK.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    return sock


@asynccontextmanager
async def serve_in_loop(app_for_url: Callable[[str], App]) -> AsyncIterator[tuple[str, App]]:
    """Bind a free port, build the app with `app_for_url(base_url)`, serve it; yield (url, app)."""
    sock = bind_socket()
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = app_for_url(base_url)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("server stopped during startup")
            await asyncio.sleep(0.01)
        yield base_url, app
    finally:
        server.should_exit = True
        await task
        sock.close()
