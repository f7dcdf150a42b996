"""`curaway demo`'s flow: a patient, a case, the uploads, their live progress, the checklist."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import httpx

from app.config import PROJECT_ROOT
from app.demo.client import DemoError, check_reachable, detail, dev_token, get, post, request
from app.demo.display import Display, DocumentLine, checklist_lines, summary_line
from app.demo.progress import Progress, document_reader
from app.demo.stream import event_stream

DEFAULT_DOCUMENTS = PROJECT_ROOT / "tests" / "fixtures" / "documents"
DEFAULT_PROCEDURE = "cabg"
DEFAULT_TIMEOUT_S = 180.0


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
        await check_reachable(client, url)
        token = options.token or await dev_token(client, url)
        headers = {"Authorization": f"Bearer {token}"}
        patient = await post(
            client,
            "/patients",
            headers,
            {"name": "Demo Patient", "email": "demo.patient@example.org"},
            what="create a patient",
        )
        case = await post(
            client, "/cases", headers, {"patient_id": patient["id"], "procedure": options.procedure}, what="open a case"
        )
        display.say(f"Curaway demo against {url}")
        display.say(
            f"patient {patient['id']}, case {case['id']} ({case['procedure']}); "
            f"uploading {len(pdfs)} document(s) from {options.documents}"
        )
        display.say()
        display.lines = [DocumentLine(p.name) for p in pdfs]
        progress = Progress(display)
        async with event_stream(client, case["id"], headers) as stream:
            reader = asyncio.create_task(progress.follow(stream))
            try:
                display.refresh()
                for path, line in zip(pdfs, display.lines, strict=True):
                    await _upload(client, case["id"], headers, path, line, progress)
                await progress.wait_done(options.timeout_s, reader, document_reader(client, headers))
            finally:
                display.refresh(final=True)
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader
        display.say()
        display.say(summary_line(display.lines))
        checklist = await get(
            client, f"/cases/{case['id']}/requirements", headers, what="read the requirement checklist"
        )
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


async def _upload(
    client: httpx.AsyncClient, case_id: str, headers: dict[str, str], path: Path, line: DocumentLine, progress: Progress
) -> None:
    line.state = "uploading"
    progress.display.refresh()
    response = await request(
        client,
        "POST",
        f"/cases/{case_id}/documents",
        headers=headers,
        files={"file": (path.name, path.read_bytes(), "application/pdf")},
    )
    if response.status_code == 202:
        progress.accept(line, response.json()["document_id"])
    elif 400 <= response.status_code < 500 and response.status_code not in (401, 403):
        line.state, line.reason = "refused", f"{detail(response)} ({response.status_code})"
        progress.display.refresh()
    else:
        raise DemoError(f"uploading {path.name} failed: {response.status_code} {detail(response)}")
