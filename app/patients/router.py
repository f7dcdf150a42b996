"""`POST /patients` (ops)."""

from __future__ import annotations

from fastapi import APIRouter

from app.auth.dependencies import OpsDep
from app.dependencies import SessionDep
from app.errors import error_responses
from app.patients import service
from app.patients.schemas import PatientCreate, PatientRead

router = APIRouter(tags=["patients"], responses=error_responses(401, 403))


@router.post("/patients", status_code=201)
async def create_patient(body: PatientCreate, session: SessionDep, _: OpsDep) -> PatientRead:
    """Register a patient."""
    patient = await service.create_patient(session, data=body)
    return PatientRead.model_validate(patient)
