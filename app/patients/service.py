"""Patients: create and fetch. Services flush; the caller owns the commit."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NotFound
from app.ids import new_id
from app.patients.models import Patient
from app.patients.schemas import PatientCreate


async def create_patient(session: AsyncSession, *, data: PatientCreate) -> Patient:
    patient = Patient(id=new_id("pat"), name=data.name.strip(), email=data.email.strip().lower())
    session.add(patient)
    await session.flush()
    return patient


async def get_patient(session: AsyncSession, *, patient_id: str) -> Patient:
    patient = await session.get(Patient, patient_id)
    if patient is None:
        raise NotFound(f"no patient {patient_id}")
    return patient
