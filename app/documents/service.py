"""Document intake: check the upload, store it, record it, and start its analysis.

What a user sends is checked before anything of the case changes: an empty file, a file that
is not a PDF, one over `MAX_UPLOAD_BYTES`, a corrupt or a password-protected PDF gets a 4xx
with a plain explanation and leaves nothing behind (the stored object is deleted).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from fastapi import UploadFile
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import transaction
from app.documents.models import Document, DocumentStatus
from app.documents.pdf import EmptyFile, NotAPdf, PdfError, describe, inspect_pdf, sniff
from app.errors import NotFound
from app.ids import new_id
from app.runtime.events import record_event
from app.runtime.ids import new_run_id
from app.runtime.runtime import Runtime
from app.runtime.transport import TransportError
from app.storage import ObjectStorage, iter_chunks

log = logging.getLogger(__name__)

WORKFLOW = "document-analysis"


@dataclass(frozen=True, slots=True)
class Accepted:
    document_id: str
    workflow_run_id: str


async def accept_upload(
    sessions: async_sessionmaker[AsyncSession],
    *,
    storage: ObjectStorage,
    runtime: Runtime,
    case_id: str,
    upload: UploadFile,
    max_bytes: int,
) -> Accepted:
    head = await upload.read(1024)
    await upload.seek(0)
    if not head:
        raise EmptyFile()
    if not sniff(head):
        raise NotAPdf(describe(head))
    document_id, run_id = new_id("doc"), new_run_id()
    key = f"cases/{case_id}/{document_id}.pdf"
    stored = await storage.put(key, iter_chunks(upload.read), max_bytes=max_bytes, content_type="application/pdf")
    try:
        info = await asyncio.to_thread(inspect_pdf, await storage.read(key))
    except PdfError:
        await storage.delete(key)
        raise
    async with transaction(sessions) as session:
        session.add(
            Document(
                id=document_id,
                case_id=case_id,
                filename=(upload.filename or "document.pdf")[:300],
                content_type="application/pdf",
                size_bytes=stored.size,
                sha256=stored.sha256,
                storage_key=key,
                status=DocumentStatus.UPLOADED,
                page_count=info.page_count,
                issues=[],
                workflow_run_id=run_id,
            )
        )
        record_event(session, "document.uploaded", case_id=case_id, document_id=document_id, workflow_id=run_id,
                     payload={"filename": upload.filename, "size": stored.size, "pages": info.page_count})
    await _start_analysis(sessions, runtime, case_id=case_id, document_id=document_id, run_id=run_id)
    return Accepted(document_id, run_id)


async def _start_analysis(
    sessions: async_sessionmaker[AsyncSession], runtime: Runtime, *, case_id: str, document_id: str, run_id: str
) -> None:
    payload = {"document_id": document_id, "case_id": case_id}
    try:
        await runtime.trigger(WORKFLOW, payload, run_id=run_id, case_id=case_id, document_id=document_id)
    except TransportError:
        # The run is recorded; the watchdog publishes its first message once QStash answers.
        log.exception("could not publish the start of %s; the watchdog will retry", run_id)
    except Exception as exc:
        async with transaction(sessions) as session:
            document = await session.get(Document, document_id)
            assert document is not None
            document.status = DocumentStatus.FAILED
            document.failure_reason = f"the analysis could not be started: {type(exc).__name__}"
        raise


async def get_document(session: AsyncSession, *, document_id: str) -> Document:
    document = await session.get(Document, document_id)
    if document is None:
        raise NotFound(f"no document {document_id}")
    return document

