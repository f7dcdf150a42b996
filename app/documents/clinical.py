"""Clinical stages of one document: extraction (the Clinical Context Agent) and FHIR validation."""

from __future__ import annotations

from typing import Any

from app.cases.models import Case
from app.db import transaction
from app.documents.analysis import page_texts
from app.documents.models import Document
from app.ehr.fhir import to_fhir
from app.extraction.agent import ExtractionError
from app.extraction.schemas import Extraction
from app.runtime.errors import NonRetryableError
from app.runtime.events import record_event_once
from app.workflows.deps import PipelineDeps


async def extract(deps: PipelineDeps, document_id: str) -> dict[str, Any]:
    """Conditions, medications, allergies, labs, studies and the recommended procedure."""
    async with deps.sessions() as session:
        document = await session.get(Document, document_id)
    assert document is not None
    if document.extraction is None:
        try:
            extraction = await deps.extractor.extract(await page_texts(deps, document_id))
        except ExtractionError as exc:
            if not exc.retryable:
                raise NonRetryableError(str(exc)) from exc
            raise
        async with transaction(deps.sessions) as session:
            row = await session.get(Document, document_id)
            assert row is not None
            row.extraction = extraction.model_dump(mode="json")
            await record_event_once(session, "document.extraction_completed", case_id=row.case_id,
                                    document_id=document_id, payload=_counts(row.extraction))
        return _counts(row.extraction)
    return _counts(document.extraction)


def _counts(extraction: dict[str, Any]) -> dict[str, Any]:
    return {
        key: len(extraction.get(key) or [])
        for key in ("conditions", "medications", "allergies", "labs", "studies")
    } | {"recommended_procedure": extraction.get("recommended_procedure")}


async def validate_fhir(deps: PipelineDeps, document_id: str) -> dict[str, int]:
    """Map the extraction to FHIR resources; invalid ones become recorded issues."""
    async with transaction(deps.sessions) as session:
        row = await session.get(Document, document_id)
        assert row is not None and row.extraction is not None
        case = await session.get(Case, row.case_id)
        assert case is not None
        resources, issues = to_fhir(
            Extraction.model_validate(row.extraction), patient_ref=f"Patient/{case.patient_id}", document_id=document_id
        )
        row.fhir_resources, row.issues = resources, issues
        summary = {"resources": len(resources), "issues": len(issues)}
        await record_event_once(session, "document.fhir_validated", case_id=row.case_id, document_id=document_id, payload=summary)
    return summary
