"""An ASGI wrapper that delivers every workflow request twice, concurrently.

It stands in for QStash's at-least-once delivery at its worst: the same signed message
arriving twice at the same moment. The first copy's response is sent back; the other is
discarded. It wraps the HTTP edge only; the app behind it is the real one.
"""

from __future__ import annotations

import asyncio
from typing import Any


class DuplicateDeliveries:
    def __init__(self, app: Any, prefix: str = "/workflows/") -> None:
        self.app = app
        self.prefix = prefix
        self.duplicated = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.duplicated += 1

        def replay() -> Any:
            sent = False

            async def _receive() -> dict[str, Any]:
                nonlocal sent
                if sent:
                    await asyncio.Event().wait()  # no disconnect until the response is done
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}

            return _receive

        async def discard(_: dict[str, Any]) -> None:
            return None

        await asyncio.gather(self.app(dict(scope), replay(), send), self.app(dict(scope), replay(), discard))
