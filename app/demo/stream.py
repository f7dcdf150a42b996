"""The case's progress stream (server-sent events, read with httpx-sse), reconnecting with `Last-Event-ID`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
from httpx_sse import EventSource, ServerSentEvent

from app.demo.client import DemoError, detail, transport_reason


async def read_events(response: httpx.Response) -> AsyncIterator[ServerSentEvent]:
    """The events of an SSE response, without keep-alive pings.

    httpx-sse keeps the last event ID (as the SSE spec says) and so, once an event had an `id:`,
    yields every ping (a comment line) as an event with empty data; the spec drops those.
    """
    async for event in EventSource(response).aiter_sse():
        if event.data:
            yield event


@contextlib.asynccontextmanager
async def event_stream(client: httpx.AsyncClient, case_id: str, headers: dict[str, str]) -> AsyncIterator[EventStream]:
    stream = EventStream(client, f"/cases/{case_id}/events", headers)
    await stream.connect()
    try:
        yield stream
    finally:
        await stream.close()


class EventStream:
    """The case's SSE stream; reconnects with `Last-Event-ID` when the connection drops."""

    def __init__(self, client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> None:
        self._client, self._path, self._headers = client, path, headers
        self._response: httpx.Response | None = None
        self.last_id: str | None = None

    async def connect(self) -> None:
        headers = {**self._headers, "Accept": "text/event-stream"}
        if self.last_id:
            headers["Last-Event-ID"] = self.last_id
        request = self._client.build_request("GET", self._path, headers=headers, timeout=httpx.Timeout(10.0, read=None))
        try:
            response = await self._client.send(request, stream=True)
        except httpx.TransportError as exc:
            raise DemoError(f"could not open the progress stream: {transport_reason(exc)}") from exc
        if response.status_code != 200:
            await response.aread()
            await response.aclose()
            raise DemoError(f"could not open the progress stream: {response.status_code} {detail(response)}")
        self._response = response

    async def close(self) -> None:
        if self._response is not None:
            await self._response.aclose()
            self._response = None

    async def events(self) -> AsyncIterator[ServerSentEvent]:
        """Every event, across reconnects (a few attempts, then the error is raised)."""
        failures = 0
        while True:
            assert self._response is not None
            try:
                async for event in read_events(self._response):
                    failures = 0
                    if event.id:
                        self.last_id = event.id
                    yield event
            except httpx.TransportError:
                failures += 1
                if failures > 5:
                    raise
            await self.close()
            await asyncio.sleep(min(0.2 * 2**failures, 2.0))
            await self.connect()
