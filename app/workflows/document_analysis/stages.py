"""The document-analysis stages: each one is a durable step of `workflow.py`.

A stage orchestrates: it calls the domains' services and pure functions (documents, cases,
ehr, extraction, matching, storage) and commits their writes together with one `document.*`
progress event. Every stage is idempotent: a stage that finds its output already there (a
retry after a crash past the commit) returns it without doing the work or telling the patient
twice. Page text stays in `document_pages`; stages return only small summaries.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.cases import service as cases
from app.compute import run_cpu
from app.db import transaction
from app.documents import service as documents
from app.documents.models import Document, DocumentPage, DocumentStatus
from app.documents.ocr import PageTexts, extract_pages
from app.documents.pdf import PdfError
from app.ehr import service as ehr
from app.ehr.bundle import build_bundle
from app.ehr.fhir import to_fhir
from app.errors import NotFound
from app.extraction.agent import ExtractionError
from app.extraction.schemas import Extraction
from app.matching.facts import document_facts
from app.matching.matcher import match_requirements
from app.matching.schemas import Fact
from app.procedures.catalog import get_procedure
from app.runtime.errors import NonRetryableError
from app.runtime.events import record_event_once
from app.workflows.deps import PipelineDeps

MAX_MATCH_ROUNDS = 5
COUNTED = ("conditions", "medications", "allergies", "labs", "studies")


async def _progress(session: AsyncSession, type_: str, document: Document, payload: dict[str, Any]) -> None:
    """The stage's progress event for the patient, once per document and type."""
    await record_event_once(session, type_, case_id=document.case_id, document_id=document.id, payload=payload)


async def _document(deps: PipelineDeps, document_id: str) -> Document:
    async with deps.sessions() as session:
        try:
            return await documents.get_document(session, document_id=document_id)
        except NotFound as exc:
            raise NonRetryableError(f"document {document_id} does not exist") from exc


async def confirm_upload(deps: PipelineDeps, document_id: str) -> dict[str, Any]:
    """`confirm-upload`: the stored object is there, with the size and SHA-256 recorded at upload."""
    document = await _document(deps, document_id)
    stored = await deps.storage.stat(document.storage_key)
    if stored is None:
        raise NonRetryableError("the uploaded file is missing from storage; please upload it again")
    if (stored.size, stored.sha256) != (document.size_bytes, document.sha256):
        raise NonRetryableError(
            "the stored file does not match the upload (size or checksum differ); please upload it again"
        )
    async with transaction(deps.sessions) as session:
        row = await documents.mark_processing(session, document_id=document_id)
        await _progress(session, "document.upload_confirmed", row, {"size": stored.size})
    return {"size": stored.size, "pages": document.page_count}


async def read_pages(deps: PipelineDeps, document_id: str) -> dict[str, Any]:
    """`ocr`: text per page (OCR for pages without a text layer), stored in `document_pages`."""
    document = await _document(deps, document_id)
    async with deps.sessions() as session:
        stored = await documents.stored_pages(session, document_id=document_id)
    if stored and document.status != DocumentStatus.NEEDS_OCR:
        return _page_summary(stored, needs_ocr=False, reason=None)
    pages = await _extract_pages(deps, await deps.storage.read(document.storage_key))
    async with transaction(deps.sessions) as session:
        row = await documents.replace_pages(session, document_id=document_id, pages=pages)
        if pages.needs_ocr:
            await _progress(session, "document.needs_ocr", row, {"reason": pages.reason})
        else:
            payload = {"pages": pages.page_count, "ocr_pages": list(pages.ocr_page_numbers)}
            await _progress(session, "document.ocr_completed", row, payload)
        stored = await documents.stored_pages(session, document_id=document_id)
    return _page_summary(stored, needs_ocr=pages.needs_ocr, reason=pages.reason)


async def _extract_pages(deps: PipelineDeps, data: bytes) -> PageTexts:
    """PyMuPDF off the event loop; the OCR engines (`OCR_ENGINES`) only when OCR is enabled."""
    settings = deps.settings
    try:
        return await run_cpu(
            extract_pages,
            data,
            tessdata_prefix=(settings.tessdata_prefix or None) if settings.ocr_enabled else "",
            language=settings.ocr_language,
            search_standard_paths=settings.ocr_enabled,
            engines=settings.active_ocr_engines,
        )
    except PdfError as exc:
        raise NonRetryableError(exc.detail) from exc


def _page_summary(pages: list[DocumentPage], *, needs_ocr: bool, reason: str | None) -> dict[str, Any]:
    return {
        "pages": len(pages),
        "ocr_pages": [p.page_number for p in pages if p.ocr],
        "characters": sum(len(p.text) for p in pages),
        "needs_ocr": needs_ocr,
        "reason": reason,
    }


async def extract(deps: PipelineDeps, document_id: str) -> dict[str, Any]:
    """`clinical-extract`: conditions, medications, allergies, labs, studies, recommended procedure."""
    document = await _document(deps, document_id)
    if document.extraction is not None:
        return _counts(document.extraction)
    async with deps.sessions() as session:
        texts = await documents.page_texts(session, document_id=document_id)
    try:
        extraction = (await deps.extractor.extract(texts)).model_dump(mode="json")
    except ExtractionError as exc:
        if not exc.retryable:
            raise NonRetryableError(str(exc)) from exc
        raise
    async with transaction(deps.sessions) as session:
        row = await documents.save_extraction(session, document_id=document_id, extraction=extraction)
        await _progress(session, "document.extraction_completed", row, _counts(extraction))
    return _counts(extraction)


def _counts(extraction: dict[str, Any]) -> dict[str, Any]:
    counts: dict[str, Any] = {key: len(extraction.get(key) or []) for key in COUNTED}
    return counts | {"recommended_procedure": extraction.get("recommended_procedure")}


async def validate_fhir(deps: PipelineDeps, document_id: str) -> dict[str, int]:
    """`fhir-validate`: map the extraction to FHIR resources; invalid ones become recorded issues.

    Validation is CPU work: it runs in a worker thread, outside any transaction.
    """
    async with deps.sessions() as session:
        document = await documents.get_document(session, document_id=document_id)
        assert document.extraction is not None
        case = await cases.get_case(session, case_id=document.case_id)
    resources, issues = await run_cpu(
        to_fhir,
        Extraction.model_validate(document.extraction),
        patient_ref=f"Patient/{case.patient_id}",
        document_id=document_id,
    )
    async with transaction(deps.sessions) as session:
        document = await documents.get_document(session, document_id=document_id)
        await documents.save_fhir(session, document_id=document_id, resources=resources, issues=issues)
        summary = {"resources": len(resources), "issues": len(issues)}
        await _progress(session, "document.fhir_validated", document, summary)
    return summary


async def match_case(deps: PipelineDeps, case_id: str, document_id: str) -> dict[str, int]:
    """`embedding-match`: the case's checklist from every analysed document, with evidence.

    Matching runs outside any transaction (it may call an embeddings API). The write then locks
    the case row and checks that the set of analysed documents is still the one matched; if
    another document was analysed meanwhile, it matches again, so the last write always covers
    every document.
    """
    async with deps.sessions() as session:
        case = await cases.get_case(session, case_id=case_id)
    procedure = get_procedure(case.procedure)
    for _ in range(MAX_MATCH_ROUNDS):
        analysed, facts = await _case_facts(deps, case_id)
        matches = await match_requirements(procedure, facts, deps.embedder, deps.settings.match_threshold)
        async with transaction(deps.sessions) as session:
            await cases.lock_case(session, case_id=case_id)
            if await documents.analysed_ids(session, case_id=case_id) != analysed:
                continue  # the transaction only read; nothing to undo
            summary = await cases.record_requirements(session, case_id=case_id, matches=matches)
            await record_event_once(
                session, "document.requirements_matched", case_id=case_id, document_id=document_id, payload=summary
            )
            return summary
    raise RuntimeError(f"case {case_id} kept changing while its requirements were matched; retrying the step")


async def _case_facts(deps: PipelineDeps, case_id: str) -> tuple[list[str], list[Fact]]:
    """The IDs of the case's analysed documents and every fact they contain."""
    async with deps.sessions() as session:
        analysed = await documents.analysed_documents(session, case_id=case_id)
        first_pages = await documents.first_page_texts(session, document_ids=[d.id for d in analysed])
    facts = [
        fact
        for document in analysed
        for fact in document_facts(document.id, document.extraction or {}, first_pages.get(document.id))
    ]
    return [d.id for d in analysed], facts


async def rebuild_ehr(deps: PipelineDeps, case_id: str, document_id: str) -> dict[str, int]:
    """`ehr-rebuild`: one deduplicated FHIR Bundle from every analysed document of the case."""
    async with transaction(deps.sessions) as session:
        # The case row lock serialises rebuilds of one case (SQLite serialises writers anyway),
        # so a rebuild that read fewer documents can never overwrite a later one.
        case = await cases.lock_case(session, case_id=case_id)
        analysed = await documents.documents_with_fhir(session, case_id=case_id)
        bundle = await run_cpu(  # CPU work off the loop; the case stays locked meanwhile
            build_bundle,
            case_id,
            f"Patient/{case.patient_id}",
            [(d.id, d.created_at, d.fhir_resources or []) for d in analysed],
        )
        await ehr.save_bundle(session, case_id=case_id, bundle=bundle)
        summary = {"entries": len(bundle.get("entry", [])), "documents": len(analysed)}
        await record_event_once(
            session, "document.ehr_rebuilt", case_id=case_id, document_id=document_id, payload=summary
        )
    return summary


async def finish(deps: PipelineDeps, document_id: str) -> dict[str, Any]:
    """`sse-notify`: mark the document analysed and send the final progress event."""
    async with transaction(deps.sessions) as session:
        document = await documents.mark_analyzed(session, document_id=document_id)
        summary = {
            "conditions": len((document.extraction or {}).get("conditions", [])),
            "issues": len(document.issues or []),
        }
        await _progress(session, "document.analyzed", document, summary)
    return summary


async def mark_failed(deps: PipelineDeps, document_id: str, reason: str) -> None:
    """`on_failure`: the analysis failed for good; say so on the document and to the patient."""
    async with transaction(deps.sessions) as session:
        document = await documents.mark_failed(session, document_id=document_id, reason=reason)
        if document is not None:
            await _progress(session, "document.analysis_failed", document, {"reason": reason})
