"""Documents: intake (check the upload, store it, record it, start its analysis) and their state.

What a user sends is checked before anything of the case changes: an empty file, a file that
is not a PDF, one over `MAX_UPLOAD_BYTES`, a corrupt or a password-protected PDF gets a 4xx
with a plain explanation and leaves nothing behind (the stored object is deleted).

The other functions read and write a document and its pages for the analysis stages
(`app.workflows.document_analysis.stages`); like every service they only flush, the caller
owns the transaction.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import UploadFile
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.documents.models import Document, DocumentPage, DocumentStatus
from app.documents.ocr import PageTexts
from app.documents.pdf import EmptyFile, NotAPdf, PdfError, PdfInfo, describe, inspect_pdf, sniff
from app.errors import NotFound
from app.ids import new_id
from app.runtime.events import record_event
from app.runtime.ids import new_run_id
from app.runtime.runtime import Runtime
from app.storage import ObjectStorage, StoredObject, iter_chunks

WORKFLOW = "document-analysis"


@dataclass(frozen=True, slots=True)
class Accepted:
    document_id: str
    workflow_run_id: str


async def accept_upload(
    session: AsyncSession,
    *,
    storage: ObjectStorage,
    runtime: Runtime,
    case_id: str,
    upload: UploadFile,
    max_bytes: int,
) -> Accepted:
    """Check, store and record the upload, with the start of its analysis.

    Unlike other services this one commits: first whatever the session read (no transaction
    stays open while the file is stored; on SQLite it would hold the write lock), then the
    document row together with its analysis run (`runtime.start_in`): a crash can never leave
    a document recorded without the run that analyses it. After that commit the run is driven
    at once in this process (or its start is published); its outbox row is the safety net.
    """
    await session.commit()
    document_id, run_id = new_id("doc"), new_run_id()
    key = f"cases/{case_id}/{document_id}.pdf"
    stored, info = await _store(storage, key, upload=upload, max_bytes=max_bytes)
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
    payload = {"filename": upload.filename, "size": stored.size, "pages": info.page_count}
    record_event(
        session, "document.uploaded", case_id=case_id, document_id=document_id, workflow_id=run_id, payload=payload
    )
    analysis = {"document_id": document_id, "case_id": case_id}
    try:
        start = await runtime.start_in(session, WORKFLOW, analysis, run_id=run_id, labels=analysis)
        await session.commit()
    except BaseException:
        await session.rollback()
        await storage.delete(key)  # nothing refers to it
        raise
    await runtime.flush([start])
    return Accepted(document_id, run_id)


async def _store(
    storage: ObjectStorage, key: str, *, upload: UploadFile, max_bytes: int
) -> tuple[StoredObject, PdfInfo]:
    """Sniff, store and open the PDF; a refused file leaves nothing in storage."""
    head = await upload.read(1024)
    await upload.seek(0)
    if not head:
        raise EmptyFile()
    if not sniff(head):
        raise NotAPdf(describe(head))
    stored = await storage.put(key, iter_chunks(upload.read), max_bytes=max_bytes, content_type="application/pdf")
    try:
        info = await asyncio.to_thread(inspect_pdf, await storage.read(key))
    except PdfError:
        await storage.delete(key)
        raise
    return stored, info


async def get_document(session: AsyncSession, *, document_id: str) -> Document:
    document = await session.get(Document, document_id)
    if document is None:
        raise NotFound(f"no document {document_id}")
    return document


async def mark_processing(session: AsyncSession, *, document_id: str) -> Document:
    """The upload is confirmed: `uploaded` becomes `processing` (any later status stays)."""
    document = await get_document(session, document_id=document_id)
    if document.status == DocumentStatus.UPLOADED:
        document.status = DocumentStatus.PROCESSING
    return document


async def stored_pages(session: AsyncSession, *, document_id: str) -> list[DocumentPage]:
    """The document's pages, in page order."""
    query = select(DocumentPage).where(DocumentPage.document_id == document_id)
    return list(await session.scalars(query.order_by(DocumentPage.page_number)))


async def replace_pages(session: AsyncSession, *, document_id: str, pages: PageTexts) -> Document:
    """Store the text of every page; a document without usable text becomes `needs_ocr`."""
    await session.execute(delete(DocumentPage).where(DocumentPage.document_id == document_id))
    session.add_all(
        DocumentPage(document_id=document_id, page_number=p.number, text=p.text, ocr=p.ocr) for p in pages.pages
    )
    document = await get_document(session, document_id=document_id)
    document.page_count = pages.page_count
    if pages.needs_ocr:
        document.status, document.failure_reason = DocumentStatus.NEEDS_OCR, pages.reason
    await session.flush()
    return document


async def page_texts(session: AsyncSession, *, document_id: str) -> list[str]:
    """The text of each page, in page order."""
    query = select(DocumentPage.text).where(DocumentPage.document_id == document_id)
    return list(await session.scalars(query.order_by(DocumentPage.page_number)))


async def first_page_texts(session: AsyncSession, *, document_ids: list[str]) -> dict[str, str]:
    """Document ID -> the text of its first page."""
    query = select(DocumentPage).where(DocumentPage.document_id.in_(document_ids), DocumentPage.page_number == 1)
    return {row.document_id: row.text for row in await session.scalars(query)}


async def save_extraction(session: AsyncSession, *, document_id: str, extraction: dict[str, Any]) -> Document:
    document = await get_document(session, document_id=document_id)
    document.extraction = extraction
    return document


async def save_fhir(
    session: AsyncSession, *, document_id: str, resources: list[dict[str, Any]], issues: list[dict[str, Any]]
) -> Document:
    document = await get_document(session, document_id=document_id)
    document.fhir_resources, document.issues = resources, issues
    return document


async def mark_analyzed(session: AsyncSession, *, document_id: str) -> Document:
    document = await get_document(session, document_id=document_id)
    document.status, document.failure_reason = DocumentStatus.ANALYZED, None
    return document


async def mark_failed(session: AsyncSession, *, document_id: str, reason: str) -> Document | None:
    """The analysis failed for good; None when the document is gone."""
    document = await session.get(Document, document_id)
    if document is not None:
        document.status, document.failure_reason = DocumentStatus.FAILED, reason
    return document


async def analysed_documents(session: AsyncSession, *, case_id: str) -> list[Document]:
    """The case's documents that have an extraction, by ID."""
    query = select(Document).where(Document.case_id == case_id, Document.extraction.is_not(None))
    return list(await session.scalars(query.order_by(Document.id)))


async def analysed_ids(session: AsyncSession, *, case_id: str) -> list[str]:
    query = select(Document.id).where(Document.case_id == case_id, Document.extraction.is_not(None))
    return list(await session.scalars(query.order_by(Document.id)))


async def documents_with_fhir(session: AsyncSession, *, case_id: str) -> list[Document]:
    """The case's documents that have FHIR resources, oldest first."""
    query = select(Document).where(Document.case_id == case_id, Document.fhir_resources.is_not(None))
    return list(await session.scalars(query.order_by(Document.created_at)))


async def stale_uploads(session: AsyncSession, *, before: datetime, after: str, limit: int) -> list[str]:
    """IDs of documents still `uploaded` (never confirmed by an analysis) created before `before`."""
    query = (
        select(Document.id)
        .where(Document.id > after, Document.status == DocumentStatus.UPLOADED, Document.created_at < before)
        .order_by(Document.id)
        .limit(limit)
    )
    return list(await session.scalars(query))


async def delete_stale_uploads(session: AsyncSession, *, document_ids: list[str], before: datetime) -> list[str]:
    """Delete those documents that are still stale; returns the storage keys they pointed at."""
    if not document_ids:
        return []
    result = await session.execute(
        delete(Document)
        .where(Document.id.in_(document_ids), Document.status == DocumentStatus.UPLOADED, Document.created_at < before)
        .returning(Document.storage_key)
    )
    return sorted(result.scalars())
