"""`curaway demo`: walk a running service through a whole case, live, in the terminal.

The demo is an HTTP client of the service and nothing more (it imports no domain code): it
gets an ops token (`--token`, else `POST /auth/dev-token`, which exists only in
`ENV=development`), creates a patient and a case, opens the case's progress stream
(`GET /cases/{id}/events`, server-sent events) *before* uploading, uploads every PDF of a
directory, and shows each document's progress as one line with a stage bar:

    discharge_summary_cardiology.pdf  [#####---] 5/8 fhir validated

When stdout is a terminal the block of lines is redrawn in place (ANSI cursor movement);
otherwise a line is appended each time a document's line changes, so logs and pipes stay
readable. It stops when every accepted document is in a final state (analyzed, needs OCR,
failed) or the timeout passes, then prints the case's requirement checklist. The stream drives
the display; as a safety net, documents still in progress are also read from
`GET /documents/{id}` every few seconds, so a late or lost event cannot stall the demo.

Exit status: 0 when the demo ran to the end (a refused upload, a document that needs OCR or
whose analysis failed is an *outcome* the demo shows, not an error of the demo); 1 when it could
not run (service unreachable, no dev-token route and no `--token`, token refused, no PDFs,
an unexpected API answer, or the timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx

from app.config import PROJECT_ROOT
from app.demo_display import (
    FINAL_STATUS_EVENTS,
    Display,
    DocumentLine,
    apply_event,
    checklist_lines,
    summary_line,
)
from app.sse_client import SseEvent, read_events

DEFAULT_DOCUMENTS = PROJECT_ROOT / "tests" / "fixtures" / "documents"
DEFAULT_PROCEDURE = "cabg"
DEFAULT_TIMEOUT_S = 180.0

RECHECK_S = 3.0  # how often documents still in progress are also read from the API


class DemoError(Exception):
    """Something that stops the demo; its message is shown to the user as is."""


@dataclass
class DemoOptions:
    url: str
    documents: Path | str = DEFAULT_DOCUMENTS
    procedure: str = DEFAULT_PROCEDURE
    token: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S


async def run_demo(options: DemoOptions, *, out: TextIO | None = None, tty: bool | None = None) -> int:
    """The demo's entry point: 0 when it ran to the end, 1 (with a message on stderr) otherwise."""
    out = out if out is not None else sys.stdout
    tty = out.isatty() if tty is None else tty
    try:
        await _demo(options, Display(out, tty))
    except DemoError as exc:
        out.flush()
        print(f"curaway demo: {exc}", file=sys.stderr)
        return 1
    return 0


async def _demo(options: DemoOptions, display: Display) -> None:
    url = options.url.rstrip("/")
    pdfs = _pdfs(Path(options.documents))
    timeout = httpx.Timeout(60.0, connect=5.0)
    async with httpx.AsyncClient(base_url=url, timeout=timeout) as client:
        await _check_reachable(client, url)
        token = options.token or await _dev_token(client, url)
        headers = {"Authorization": f"Bearer {token}"}
        patient = await _post(client, "/patients", headers, {"name": "Demo Patient", "email": "demo.patient@example.org"},
                              what="create a patient")
        case = await _post(client, "/cases", headers, {"patient_id": patient["id"], "procedure": options.procedure},
                           what="open a case")
        display.say(f"Curaway demo against {url}")
        display.say(f"patient {patient['id']}, case {case['id']} ({case['procedure']}); "
                    f"uploading {len(pdfs)} document(s) from {options.documents}")
        display.say()
        display.lines = [DocumentLine(p.name) for p in pdfs]
        progress = Progress(display)
        async with _event_stream(client, case["id"], headers) as stream:
            reader = asyncio.create_task(progress.follow(stream))
            try:
                display.refresh()
                for path, line in zip(pdfs, display.lines, strict=True):
                    await _upload(client, case["id"], headers, path, line, progress)
                await progress.wait_done(options.timeout_s, reader, _document_reader(client, headers))
            finally:
                display.refresh(final=True)
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader
        display.say()
        display.say(summary_line(display.lines))
        checklist = await _get(client, f"/cases/{case['id']}/requirements", headers, what="read the requirement checklist")
        names = {line.document_id: line.name for line in display.lines if line.document_id}
        for text in checklist_lines(checklist, names):
            display.say(text)


def _pdfs(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise DemoError(f"{directory} is not a directory")
    pdfs = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() == ".pdf")
    if not pdfs:
        raise DemoError(f"no PDF files in {directory}")
    return pdfs


async def _check_reachable(client: httpx.AsyncClient, url: str) -> None:
    try:
        response = await client.get("/healthz")
    except httpx.TransportError as exc:
        raise DemoError(
            f"cannot reach the Curaway service at {url} ({_transport_reason(exc)}); "
            "start it with `curaway serve` (or `make run`), or pass --url"
        ) from exc
    if response.status_code != 200:
        raise DemoError(f"{url}/healthz answered {response.status_code}: is this a Curaway service?")


def _transport_reason(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return f"could not connect: {exc}" if str(exc) else "could not connect"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def _dev_token(client: httpx.AsyncClient, url: str) -> str:
    response = await _request(client, "POST", "/auth/dev-token", json={"sub": "ops"})
    if response.status_code == 404:
        raise DemoError(
            f"the service at {url} is not in development mode (no /auth/dev-token route); "
            "pass the ops token with --token"
        )
    if response.status_code != 200:
        raise DemoError(f"could not get a development token: {_detail(response)}")
    return str(response.json()["token"])


async def _request(client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> httpx.Response:
    try:
        return await client.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        raise DemoError(f"{method} {path} failed: {_transport_reason(exc)}") from exc


async def _post(client: httpx.AsyncClient, path: str, headers: dict[str, str], body: dict[str, Any], *, what: str) -> dict[str, Any]:
    response = await _request(client, "POST", path, json=body, headers=headers)
    if response.status_code in (401, 403):
        raise DemoError(f"could not {what}: the token was refused ({response.status_code}: {_detail(response)})")
    if response.status_code != 201:
        raise DemoError(f"could not {what}: {response.status_code} {_detail(response)}")
    return response.json()


async def _get(client: httpx.AsyncClient, path: str, headers: dict[str, str], *, what: str) -> dict[str, Any]:
    response = await _request(client, "GET", path, headers=headers)
    if response.status_code != 200:
        raise DemoError(f"could not {what}: {response.status_code} {_detail(response)}")
    return response.json()


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list):  # FastAPI validation errors
        detail = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
    return str(detail) if detail else (response.text.strip()[:200] or response.reason_phrase)


async def _upload(
    client: httpx.AsyncClient, case_id: str, headers: dict[str, str], path: Path, line: DocumentLine, progress: Progress
) -> None:
    line.state = "uploading"
    progress.display.refresh()
    response = await _request(
        client, "POST", f"/cases/{case_id}/documents", headers=headers,
        files={"file": (path.name, path.read_bytes(), "application/pdf")},
    )
    if response.status_code == 202:
        progress.accept(line, response.json()["document_id"])
    elif 400 <= response.status_code < 500 and response.status_code not in (401, 403):
        line.state, line.reason = "refused", f"{_detail(response)} ({response.status_code})"
        progress.display.refresh()
    else:
        raise DemoError(f"uploading {path.name} failed: {response.status_code} {_detail(response)}")


@contextlib.asynccontextmanager
async def _event_stream(client: httpx.AsyncClient, case_id: str, headers: dict[str, str]) -> AsyncIterator[EventStream]:
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
            raise DemoError(f"could not open the progress stream: {_transport_reason(exc)}") from exc
        if response.status_code != 200:
            await response.aread()
            await response.aclose()
            raise DemoError(f"could not open the progress stream: {response.status_code} {_detail(response)}")
        self._response = response

    async def close(self) -> None:
        if self._response is not None:
            await self._response.aclose()
            self._response = None

    async def events(self) -> AsyncIterator[SseEvent]:
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


def _document_reader(client: httpx.AsyncClient, headers: dict[str, str]) -> Callable[[str], Awaitable[dict[str, Any]]]:
    async def read(document_id: str) -> dict[str, Any]:
        return await _get(client, f"/documents/{document_id}", headers, what=f"read document {document_id}")

    return read

