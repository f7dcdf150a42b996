"""Applies the stream's progress events to the document lines, with a safety net for lost events."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from app.demo.client import DemoError, get
from app.demo.display import FINAL_STATUS_EVENTS, Display, DocumentLine, apply_event
from app.demo.stream import EventStream

RECHECK_S = 3.0  # how often documents still in progress are also read from the API


class Progress:
    """Applies progress events to the document lines; events may arrive before the upload's answer."""

    def __init__(self, display: Display) -> None:
        self.display = display
        self._pending: dict[str, list[dict[str, Any]]] = {}  # document ID -> events seen before its 202
        self._by_id: dict[str, DocumentLine] = {}
        self._changed = asyncio.Event()

    def accept(self, line: DocumentLine, document_id: str) -> None:
        line.document_id, line.state = document_id, "processing"
        self._by_id[document_id] = line
        for event in self._pending.pop(document_id, []):
            apply_event(line, event)
        self.display.refresh()
        self._changed.set()

    def on_event(self, event: dict[str, Any]) -> None:
        document_id = event.get("document_id")
        if not document_id:
            return
        line = self._by_id.get(document_id)
        if line is None:
            self._pending.setdefault(document_id, []).append(event)
            return
        if apply_event(line, event):
            self.display.refresh()
            self._changed.set()

    async def follow(self, stream: EventStream) -> None:
        async for sse in stream.events():
            try:
                event = json.loads(sse.data)
            except ValueError:
                continue
            if isinstance(event, dict):
                event.setdefault("type", sse.event)
                self.on_event(event)

    def done(self) -> bool:
        lines = self.display.lines
        return all(line.state not in {"waiting", "uploading"} for line in lines) and all(
            line.final for line in lines if line.accepted
        )

    async def wait_done(
        self, timeout_s: float, reader: asyncio.Task[None], read_document: Callable[[str], Awaitable[dict[str, Any]]]
    ) -> None:
        """Until every accepted document is final, the stream ends, or the timeout passes.

        Safety net: every RECHECK_S the documents still in progress are read from the API; one
        that the API has shown final for two checks in a row without its event arriving is
        shown final from the API's answer, so a late or lost event cannot stall the demo.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        next_check = loop.time() + RECHECK_S
        final_at_api: set[str] = set()
        while not self.done():
            if loop.time() >= next_check:
                final_at_api = await self._recheck(read_document, final_at_api)
                next_check = loop.time() + RECHECK_S
                continue
            if reader.done():
                error = reader.exception() if not reader.cancelled() else None
                raise DemoError(f"the progress stream ended: {error or 'closed by the service'}")
            remaining = deadline - loop.time()
            if remaining <= 0:
                waiting = ", ".join(line.name for line in self.display.lines if line.accepted and not line.final)
                raise DemoError(f"timed out after {timeout_s:g}s waiting for: {waiting}")
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(remaining, 0.5))

    async def _recheck(self, read_document: Callable[[str], Awaitable[dict[str, Any]]], before: set[str]) -> set[str]:
        now: set[str] = set()
        for line in self.display.lines:
            if not line.accepted or line.final:
                continue
            assert line.document_id is not None
            document = await read_document(line.document_id)
            status = document.get("status")
            if status not in FINAL_STATUS_EVENTS:
                continue
            if line.document_id not in before:
                now.add(line.document_id)
                continue
            event = {"type": FINAL_STATUS_EVENTS[status], "payload": {"reason": document.get("failure_reason")}}
            if apply_event(line, event):
                self.display.refresh()
        return now


def document_reader(client: httpx.AsyncClient, headers: dict[str, str]) -> Callable[[str], Awaitable[dict[str, Any]]]:
    async def read(document_id: str) -> dict[str, Any]:
        return await get(client, f"/documents/{document_id}", headers, what=f"read document {document_id}")

    return read
