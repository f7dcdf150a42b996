"""Hospitals as real HTTP receivers on 127.0.0.1 that verify every Standard Webhooks signature.

One server holds many receivers at `/r/<name>`. Each receiver has a behaviour (`status_for`:
attempt number -> HTTP status, or `SLOW` to answer after the sender's timeout), the secrets it
verifies with (each request must verify with *every* one of them), and a record of every request:
its `webhook-id`, whether each signature verified, and whether it was accepted. A receiver
deduplicates like a real one: a 2xx for a `webhook-id` it already accepted is not accepted again.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.live import serve

SLOW = -1  # answer only after this long: longer than the sender's timeout
SLOW_S = 4.0  # well past the scenarios' 2 s timeout, which a loaded machine still answers within


@dataclass
class Seen:
    webhook_id: str
    status: int
    verified: bool
    accepted: bool
    body: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


@dataclass
class Receiver:
    name: str
    status_for: Callable[[int], int]
    secrets: list[str] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    first_request: asyncio.Event = field(default_factory=asyncio.Event)
    extra_headers: dict[str, str] = field(default_factory=dict)

    @property
    def ids(self) -> set[str]:
        return {s.webhook_id for s in self.seen}

    def verify(self, body: bytes, headers: dict[str, str]) -> bool:
        if not self.secrets:
            return False
        try:
            for secret in self.secrets:
                Webhook(secret).verify(body, headers)
        except (WebhookVerificationError, ValueError):
            return False
        return True

    async def handle(self, request: Request) -> JSONResponse:
        body = await request.body()
        headers = dict(request.headers)
        verified = self.verify(body, headers)
        status = self.status_for(len(self.seen) + 1)
        self.first_request.set()
        if status == SLOW:
            self.seen.append(Seen(headers.get("webhook-id", ""), status, verified, False, json.loads(body)))
            await asyncio.sleep(SLOW_S)
            return JSONResponse({"ok": "too late"})
        if not verified:
            status = 401
        webhook_id = headers.get("webhook-id", "")
        accepted = 200 <= status < 300 and webhook_id not in self.accepted
        if accepted:
            self.accepted.append(webhook_id)
        self.seen.append(Seen(webhook_id, status, verified, accepted, json.loads(body)))
        return JSONResponse(
            {"status": status, "detail": f"{self.name} says {status}"}, status_code=status, headers=self.extra_headers
        )


@dataclass
class Receivers:
    base_url: str
    by_name: dict[str, Receiver]

    def url(self, name: str) -> str:
        return f"{self.base_url}/r/{name}"

    def __getitem__(self, name: str) -> Receiver:
        return self.by_name[name]


@asynccontextmanager
async def receivers(**behaviours: Callable[[int], int]) -> AsyncIterator[Receivers]:
    by_name = {name: Receiver(name, fn) for name, fn in behaviours.items()}

    async def route(request: Request) -> JSONResponse:
        receiver = by_name.get(request.path_params["name"])
        if receiver is None:
            return JSONResponse({"detail": "no such receiver"}, status_code=404)
        return await receiver.handle(request)

    def build(_: str) -> Starlette:
        return Starlette(routes=[Route("/r/{name}", route, methods=["POST"])])

    async with serve(build) as (base_url, _):
        yield Receivers(base_url, by_name)


def always(status: int) -> Callable[[int], int]:
    return lambda _: status


def fails_then(failures: int, failure: int, then: int = 200) -> Callable[[int], int]:
    return lambda n: failure if n <= failures else then
