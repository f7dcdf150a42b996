"""The `ehr-rebuild` stage: one deduplicated FHIR Bundle from every analysed document of a case."""

from __future__ import annotations

from sqlalchemy import select

from app.cases.models import Case
from app.db import transaction
from app.documents.models import Document
from app.ehr.bundle import build_bundle
from app.ehr.models import CaseRecord
from app.runtime.events import record_event_once
from app.workflows.deps import PipelineDeps


async def rebuild(deps: PipelineDeps, case_id: str, document_id: str) -> dict[str, int]:
    """Aggregate the FHIR resources of every analysed document of the case into one Bundle."""
    async with transaction(deps.sessions) as session:
        # The case row lock serialises rebuilds of one case (SQLite serialises writers anyway),
        # so a rebuild that read fewer documents can never overwrite a later one.
        case = await session.get(Case, case_id, with_for_update=True)
        assert case is not None
        documents = list(
            await session.scalars(
                select(Document).where(Document.case_id == case_id, Document.fhir_resources.is_not(None)).order_by(Document.created_at)
            )
        )
        bundle = build_bundle(
            case_id,
            f"Patient/{case.patient_id}",
            [(d.id, d.created_at, d.fhir_resources or []) for d in documents],
        )
        record = await session.get(CaseRecord, case_id)
        if record is None:
            session.add(CaseRecord(case_id=case_id, bundle=bundle))
        else:
            record.bundle = bundle
        summary = {"entries": len(bundle.get("entry", [])), "documents": len(documents)}
        await record_event_once(session, "document.ehr_rebuilt", case_id=case_id, document_id=document_id, payload=summary)
    return summary
