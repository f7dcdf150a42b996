"""Document routes: upload to a case (starts its analysis) and read one document."""

from __future__ import annotations

from fastapi import APIRouter, File, UploadFile

from app.auth.dependencies import PrincipalDep, ensure_patient
from app.cases.service import get_case
from app.dependencies import RuntimeDep, SessionDep, SettingsDep, StorageDep
from app.documents import service
from app.documents.models import DocumentStatus
from app.documents.schemas import DocumentAccepted, DocumentRead
from app.errors import BadRequest, error_responses

router = APIRouter(tags=["documents"], responses=error_responses(400, 401, 403, 404))


@router.post("/cases/{case_id}/documents", status_code=202)
async def upload_document(
    case_id: str,
    session: SessionDep,
    storage: StorageDep,
    runtime: RuntimeDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    file: UploadFile | None = File(default=None, description="the PDF, as multipart form field 'file'"),
) -> DocumentAccepted:
    """Store a PDF for the case and start its analysis; follow it on GET /cases/{id}/events."""
    await get_case(session, case_id=case_id, principal=principal)
    if file is None:
        raise BadRequest("send the document as a multipart/form-data field named 'file'")
    accepted = await service.accept_upload(
        session,
        storage=storage,
        runtime=runtime,
        case_id=case_id,
        upload=file,
        max_bytes=settings.max_upload_bytes,
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
