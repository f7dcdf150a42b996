"""Request body limits, enforced before the body is read.

A `Content-Length` over the limit is answered 413 at once, without reading a byte of the body. A
body without a length (chunked) is counted as the app reads it: the chunk that crosses the limit
raises a 413 there, so at most the limit (plus one chunk) is ever buffered or spooled. Uploads
(multipart) have their own, larger limit: MAX_UPLOAD_BYTES plus the multipart envelope.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.security.paths import PathPattern

UploadRoute = PathPattern


def too_large(limit: int) -> str:
    return f"request body too large: the limit is {limit} bytes"


class BodySizeLimit:
    def __init__(
        self, app: ASGIApp, *, default_limit: int, uploads: tuple[PathPattern, ...], upload_limit: int
    ) -> None:
        self.app = app
        self.default_limit = default_limit
        self.uploads = uploads
        self.upload_limit = upload_limit

    def limit_for(self, method: str, path: str) -> int:
        if any(route.matches(method, path) for route in self.uploads):
            return self.upload_limit
        return self.default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["method"], scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            response = JSONResponse({"detail": too_large(limit)}, status_code=413, headers={"Connection": "close"})
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, too_large(limit), headers={"Connection": "close"})
            return message

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except HTTPException as exc:  # raised by counting_receive where no exception handler runs
            if started or exc.status_code != 413:
                raise
            response = JSONResponse({"detail": exc.detail}, status_code=413, headers={"Connection": "close"})
            await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
