"""The case record: read it, and rebuild it from every analysed document of the case."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.ehr.models import CaseRecord


def empty_bundle(case_id: str) -> dict[str, Any]:
    return {"resourceType": "Bundle", "id": f"ehr-{case_id}", "type": "collection", "entry": []}


async def read_bundle(session: AsyncSession, *, case_id: str) -> dict[str, Any]:
    record = await session.get(CaseRecord, case_id)
    return record.bundle if record else empty_bundle(case_id)

