"""Faults injected at the HTTP edge of the real app (the app behind the wrapper is untouched).

`FailingPublishes` makes the embedded QStash server's publish endpoint answer 500 and 429
(the answers of an outage and of a spent daily quota) to the next `count` publishes, as real
QStash would: the runtime's publish fails and nothing is enqueued. In a separate process, a
`POST /_faults/publish-failures/<count>` sets `count` (bench/faults.py uses it).
"""

from __future__ import annotations

import json
import os
import signal
from typing import Any

CONTROL = "/_faults/publish-failures/"


class FailingPublishes:
    def __init__(self, app: Any, prefix: str = "/qstash/v2/publish/") -> None:
        self.app = app
        self.prefix = prefix
        self.remaining = 0
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    def fail_next(self, count: int) -> None:
        self.remaining = count

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith(CONTROL):
            self.fail_next(int(scope["path"].removeprefix(CONTROL)))
            await _answer(send, 200, {"failing_next": self.remaining})
            return
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix) or self.remaining <= 0:
            await self.app(scope, receive, send)
            return
        self.remaining -= 1
        self.refused += 1
        status = 429 if self.refused % 2 else 500
        await _answer(send, status, {"error": "daily quota exceeded" if status == 429 else "internal error"})


async def _answer(send: Any, status: int, payload: dict[str, Any]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(payload).encode()})


class KillAt:
    """SIGKILL the whole process at one boundary of a step, seen at the HTTP edge.

    `spec` is `<boundary>:<n>`, counting requests since the process started:
    - `arrival:<n>`: the n-th workflow delivery arrives (before its lease or attempt is recorded);
    - `publish:<n>`: the n-th publish reaches the embedded QStash (after the state change that
      asked for it committed, before the message is stored);
    - `response:<n>`: the n-th workflow delivery has been handled, committed and its
      continuation published, and is about to answer 2xx.
    In a separate process, `CURAWAY_TEST_KILL_AT` sets it (tests/support/process_server.py).
    """

    def __init__(self, app: Any, spec: str) -> None:
        self.app = app
        self.boundary, n = spec.split(":")
        self.at = int(n)
        self.seen = {"delivery": 0, "publish": 0}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = _request_kind(scope)
        if kind is None:
            await self.app(scope, receive, send)
            return
        self.seen[kind] += 1
        here = self.seen[kind] == self.at
        if here and (self.boundary, kind) in (("arrival", "delivery"), ("publish", "publish")):
            _die()
        if not (here and self.boundary == "response" and kind == "delivery"):
            await self.app(scope, receive, send)
            return

        async def send_or_die(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] < 300:
                _die()
            await send(message)

        await self.app(scope, receive, send_or_die)


def _request_kind(scope: dict[str, Any]) -> str | None:
    if scope["type"] != "http" or scope.get("method") != "POST":
        return None
    if scope["path"].startswith("/workflows/"):
        return "delivery"
    if scope["path"].startswith("/qstash/v2/publish/"):
        return "publish"
    return None


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
