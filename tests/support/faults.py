"""Faults injected at the HTTP edge of the real app (the app behind the wrapper is untouched).

`FailingPublishes` makes the embedded QStash server's publish endpoint answer 500 and 429
(the answers of an outage and of a spent daily quota) to the next `count` publishes, as real
QStash would: the runtime's publish fails and nothing is enqueued. In a separate process, a
`POST /_faults/publish-failures/<count>` sets `count` (bench/faults.py uses it).
"""

from __future__ import annotations

import json
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
