"""The document-analysis stages that work on one document (the pipeline's durable steps).

Each stage is idempotent: it commits its output together with its progress event, and a
stage that finds its output already there (a retry after a crash past the commit) returns it
without doing the work or telling the patient twice. Page text stays in `document_pages`;
steps return only small summaries.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import delete, select

from app.db import transaction
from app.documents.models import Document, DocumentPage, DocumentStatus
from app.documents.ocr import extract_pages
from app.documents.pdf import PdfError
from app.runtime.errors import NonRetryableError
from app.runtime.events import record_event_once
from app.workflows.deps import PipelineDeps


async def _load(deps: PipelineDeps, document_id: str) -> Document:
    async with deps.sessions() as session:
        document = await session.get(Document, document_id)
    if document is None:
        raise NonRetryableError(f"document {document_id} does not exist")
    return document


async def confirm_upload(deps: PipelineDeps, document_id: str) -> dict[str, Any]:
    """The stored object is there, with the size and SHA-256 recorded at upload."""
    document = await _load(deps, document_id)
    stored = await deps.storage.stat(document.storage_key)
    if stored is None:
        raise NonRetryableError("the uploaded file is missing from storage; please upload it again")
    if (stored.size, stored.sha256) != (document.size_bytes, document.sha256):
        raise NonRetryableError("the stored file does not match the upload (size or checksum differ); please upload it again")
    async with transaction(deps.sessions) as session:
        row = await session.get(Document, document_id)
        assert row is not None
        if row.status == DocumentStatus.UPLOADED:
            row.status = DocumentStatus.PROCESSING
        await record_event_once(session, "document.upload_confirmed", case_id=row.case_id, document_id=document_id,
                                payload={"size": stored.size})
    return {"size": stored.size, "pages": document.page_count}


async def read_pages(deps: PipelineDeps, document_id: str) -> dict[str, Any]:
    """Text per page (OCR for pages without a text layer), stored in `document_pages`."""
    document = await _load(deps, document_id)
    async with deps.sessions() as session:
        stored = list(await session.scalars(select(DocumentPage).where(DocumentPage.document_id == document_id)))
    if stored and document.status != DocumentStatus.NEEDS_OCR:
        return _page_summary(stored, needs_ocr=False, reason=None)
    data = await deps.storage.read(document.storage_key)
    try:
        settings = deps.settings
        pages = await asyncio.to_thread(
            extract_pages,
            data,
            tessdata_prefix=(settings.tessdata_prefix or None) if settings.ocr_enabled else "",
            language=settings.ocr_language,
            search_standard_paths=settings.ocr_enabled,
        )
    except PdfError as exc:
        raise NonRetryableError(exc.detail) from exc
    rows = [DocumentPage(document_id=document_id, page_number=p.number, text=p.text, ocr=p.ocr) for p in pages.pages]
    async with transaction(deps.sessions) as session:
        await session.execute(delete(DocumentPage).where(DocumentPage.document_id == document_id))
        session.add_all(rows)
        row = await session.get(Document, document_id)
        assert row is not None
        row.page_count = pages.page_count
        if pages.needs_ocr:
            row.status, row.failure_reason = DocumentStatus.NEEDS_OCR, pages.reason
            await record_event_once(session, "document.needs_ocr", case_id=row.case_id, document_id=document_id,
                                    payload={"reason": pages.reason})
        else:
            await record_event_once(session, "document.ocr_completed", case_id=row.case_id, document_id=document_id,
                                    payload={"pages": pages.page_count, "ocr_pages": list(pages.ocr_page_numbers)})
    return _page_summary(rows, needs_ocr=pages.needs_ocr, reason=pages.reason)


def _page_summary(pages: list[DocumentPage], *, needs_ocr: bool, reason: str | None) -> dict[str, Any]:
    return {
        "pages": len(pages),
        "ocr_pages": [p.page_number for p in pages if p.ocr],
        "characters": sum(len(p.text) for p in pages),
        "needs_ocr": needs_ocr,
        "reason": reason,
    }


async def page_texts(deps: PipelineDeps, document_id: str) -> list[str]:
    async with deps.sessions() as session:
        rows = await session.scalars(
            select(DocumentPage.text).where(DocumentPage.document_id == document_id).order_by(DocumentPage.page_number)
        )
        return list(rows)


async def finish(deps: PipelineDeps, document_id: str) -> dict[str, Any]:
    """Mark the document analysed and send the final progress event."""
    async with transaction(deps.sessions) as session:
        row = await session.get(Document, document_id)
        assert row is not None
        row.status, row.failure_reason = DocumentStatus.ANALYZED, None
        summary = {
            "conditions": len((row.extraction or {}).get("conditions", [])),
            "issues": len(row.issues or []),
        }
        await record_event_once(session, "document.analyzed", case_id=row.case_id, document_id=document_id, payload=summary)
    return summary


async def mark_failed(deps: PipelineDeps, document_id: str, reason: str) -> None:
    """The analysis failed for good: say so on the document and to the patient."""
    async with transaction(deps.sessions) as session:
        row = await session.get(Document, document_id)
        if row is None:
            return
        row.status, row.failure_reason = DocumentStatus.FAILED, reason
        await record_event_once(session, "document.analysis_failed", case_id=row.case_id, document_id=document_id,
                                payload={"reason": reason})
