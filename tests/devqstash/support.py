"""Helpers for the embedded QStash server's tests: the server under test and recording receivers.

Both run as real uvicorn servers on 127.0.0.1 in the test's event loop (`tests.support.live`).
Waiting is always by polling with `asyncio.sleep` under a bounded deadline.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI
from qstash import AsyncQStash
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.db import create_engine, session_factory
from app.devqstash import DevQStash
from app.devqstash.router import build_router
from tests.support.live import serve

TOKEN = "devqstash-test-token"
CURRENT_KEY = "sig_devqstash_test_current_key_0123456789"
NEXT_KEY = "sig_devqstash_test_next_key_9876543210ab"
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@dataclass(frozen=True, slots=True)
class Received:
    method: str
    url: str  # exactly as addressed: base URL + raw path + query
    headers: dict[str, str]  # lower-cased names
    body: bytes
    at: float

    def json(self) -> Any:
        import json

        return json.loads(self.body)


Responder = Callable[[Received], Response | Awaitable[Response]]


@dataclass
class Recorder:
    """A receiver that records every request and answers with `respond` (200 by default)."""

    respond: Responder = field(default=lambda _: Response("ok"))
    requests: list[Received] = field(default_factory=list)
    base_url: str = ""

    def app(self, base_url: str) -> Starlette:
        self.base_url = base_url
        return Starlette(routes=[Route("/{path:path}", self._endpoint, methods=METHODS)])

    async def _endpoint(self, request: Request) -> Response:
        raw = request.scope["raw_path"].decode()
        query = request.scope["query_string"].decode()
        url = self.base_url + raw + (f"?{query}" if query else "")
        received = Received(request.method, url, dict(request.headers), await request.body(), time.time())
        self.requests.append(received)
        answer = self.respond(received)
        return await answer if inspect.isawaitable(answer) else answer

    def url(self, path: str) -> str:
        return self.base_url + path

    async def wait_for(self, count: int, *, timeout: float = 10.0) -> list[Received]:
        """Wait until at least `count` requests arrived; fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} requests, got {len(self.requests)}: {self.requests}")
            await asyncio.sleep(0.02)
        return list(self.requests)


@dataclass
class QStashServer:
    base_url: str  # the QStash base URL, ending in /qstash
    devq: DevQStash
    client: AsyncQStash  # the official client
    http: httpx.AsyncClient  # raw calls, token included

    async def publish(self, destination: str, body: bytes | str = b"", **headers: str) -> httpx.Response:
        names = {key.replace("_", "-"): value for key, value in headers.items()}
        return await self.http.post(f"/v2/publish/{destination}", content=body, headers=names)


@asynccontextmanager
async def running_qstash(database_url: str, **options: Any) -> AsyncIterator[QStashServer]:
    """A FastAPI app with a started `DevQStash` mounted at /qstash, served on 127.0.0.1."""
    engine = create_engine(database_url)
    outgoing = httpx.AsyncClient()
    settings: dict[str, Any] = {"retry_scale": 0.001, "poll_interval_s": 0.05, **options}
    devq = DevQStash(
        sessions=session_factory(engine), http=outgoing, token=TOKEN, signing_keys=(CURRENT_KEY, NEXT_KEY), **settings
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await devq.start()
        try:
            yield
        finally:
            await devq.stop()

    def build(_base_url: str) -> FastAPI:
        app = FastAPI(lifespan=lifespan)
        app.include_router(build_router(devq), prefix="/qstash")
        return app

    try:
        async with serve(build) as (base_url, _app):
            qstash_url = f"{base_url}/qstash"
            client = AsyncQStash(TOKEN, base_url=qstash_url, retry=False)
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with httpx.AsyncClient(base_url=qstash_url, headers=headers) as http:
                yield QStashServer(qstash_url, devq, client, http)
    finally:
        await outgoing.aclose()
        await engine.dispose()


async def eventually(check: Callable[[], Awaitable[Any]], *, timeout: float = 10.0) -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last result {result!r})")
        await asyncio.sleep(0.05)
