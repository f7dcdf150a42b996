"""The case record (one FHIR Bundle per case): start it empty, read it, replace it."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.ehr.models import CaseRecord


def empty_bundle(case_id: str) -> dict[str, Any]:
    return {"resourceType": "Bundle", "id": f"ehr-{case_id}", "type": "collection", "entry": []}


async def read_bundle(session: AsyncSession, *, case_id: str) -> dict[str, Any]:
    record = await session.get(CaseRecord, case_id)
    return record.bundle if record else empty_bundle(case_id)


def add_empty_record(session: AsyncSession, *, case_id: str) -> None:
    """A new case starts with an empty Bundle."""
    session.add(CaseRecord(case_id=case_id, bundle=empty_bundle(case_id)))


async def save_bundle(session: AsyncSession, *, case_id: str, bundle: dict[str, Any]) -> None:
    record = await session.get(CaseRecord, case_id)
    if record is None:
        session.add(CaseRecord(case_id=case_id, bundle=bundle))
    else:
        record.bundle = bundle
