"""Document routes: upload to a case (starts its analysis) and read one document."""

from __future__ import annotations

from fastapi import APIRouter, File, UploadFile

from app.auth.dependencies import PrincipalDep, ensure_patient
from app.cases.service import get_case
from app.deps import ServicesDep, SessionDep
from app.documents import service
from app.documents.models import DocumentStatus
from app.documents.schemas import DocumentAccepted, DocumentRead
from app.errors import BadRequest

router = APIRouter(tags=["documents"])


@router.post("/cases/{case_id}/documents", status_code=202)
async def upload_document(
    case_id: str,
    services: ServicesDep,
    principal: PrincipalDep,
    file: UploadFile | None = File(default=None, description="the PDF, as multipart form field 'file'"),
) -> DocumentAccepted:
    """Store a PDF for the case and start its analysis; follow it on GET /cases/{id}/events."""
    async with services.sessions() as session:
        await get_case(session, case_id=case_id, principal=principal)
    if file is None:
        raise BadRequest("send the document as a multipart/form-data field named 'file'")
    accepted = await service.accept_upload(
        services.sessions,
        storage=services.storage,
        runtime=services.runtime,
        case_id=case_id,
        upload=file,
        max_bytes=services.settings.max_upload_bytes,
    )
    return DocumentAccepted(
        document_id=accepted.document_id, status=DocumentStatus.UPLOADED, workflow_run_id=accepted.workflow_run_id
    )


@router.get("/documents/{document_id}")
async def read_document(document_id: str, session: SessionDep, principal: PrincipalDep) -> DocumentRead:
    document = await service.get_document(session, document_id=document_id)
    case = await get_case(session, case_id=document.case_id)
    ensure_patient(principal, case.patient_id)
    return DocumentRead.model_validate(document)
