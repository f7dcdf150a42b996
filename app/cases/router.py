"""Case routes: create, read, the requirement checklist and the aggregated record (EHR)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request
from sse_starlette import EventSourceResponse

from app.auth.dependencies import PrincipalDep, ensure_patient
from app.cases import service
from app.cases.progress import ProgressDep
from app.cases.schemas import CaseCreate, CaseRead, RequirementsRead
from app.dependencies import SessionDep, SessionsDep, SettingsDep
from app.ehr.service import read_bundle
from app.errors import error_responses

router = APIRouter(tags=["cases"], responses=error_responses(400, 401, 403, 404))


@router.post("/cases", status_code=201)
async def create_case(body: CaseCreate, session: SessionDep, principal: PrincipalDep) -> CaseRead:
    """Open a case for a patient (ops, or the patient themselves)."""
    ensure_patient(principal, body.patient_id)
    return CaseRead.model_validate(await service.create_case(session, data=body))


@router.get("/cases/{case_id}")
async def read_case(case_id: str, session: SessionDep, principal: PrincipalDep) -> CaseRead:
    return CaseRead.model_validate(await service.get_case(session, case_id=case_id, principal=principal))


@router.get("/cases/{case_id}/requirements")
async def read_requirements(case_id: str, session: SessionDep, principal: PrincipalDep) -> RequirementsRead:
    """Each requirement of the case's procedure: satisfied or missing, with evidence."""
    case = await service.get_case(session, case_id=case_id, principal=principal)
    return await service.read_requirements(session, case=case)


@router.get("/cases/{case_id}/ehr")
async def read_ehr(case_id: str, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    """The case's aggregated FHIR Bundle (an empty collection before any analysis)."""
    case = await service.get_case(session, case_id=case_id, principal=principal)
    return await read_bundle(session, case_id=case.id)


@router.get("/cases/{case_id}/events")
async def stream_events(
    case_id: str,
    request: Request,
    sessions: SessionsDep,
    progress: ProgressDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    last_event_id: int | None = Query(default=None, description="resume after this event ID (or send Last-Event-ID)"),
) -> EventSourceResponse:
    """Server-sent events: the case's progress, `id:` = event ID; `Last-Event-ID` resumes.

    Browsers' `EventSource` cannot send headers: pass the token as `?access_token=`. The case is
    checked in a session of its own, closed before the stream starts.
    """
    async with sessions() as session:
        await service.get_case(session, case_id=case_id, principal=principal)
    header = request.headers.get("last-event-id", "")
    after = int(header) if header.isdigit() else (last_event_id or 0)

    async def messages() -> AsyncIterator[bytes]:
        async for event in progress.stream(case_id, after):
            yield event.sse  # encoded once by the feed for every stream of the case

    return EventSourceResponse(messages(), ping=settings.sse_ping_s)
