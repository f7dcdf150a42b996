"""Cases: create one (with its requirement checklist), fetch one, read its checklist."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.dependencies import ensure_patient
from app.auth.tokens import Principal
from app.cases.models import Case, CaseRequirement, RequirementStatus
from app.cases.schemas import CaseCreate, RequirementItem, RequirementsRead
from app.ehr.models import CaseRecord
from app.ehr.service import empty_bundle
from app.errors import NotFound
from app.ids import new_id
from app.patients.service import get_patient
from app.procedures.catalog import get_procedure


async def create_case(session: AsyncSession, *, data: CaseCreate) -> Case:
    await get_patient(session, patient_id=data.patient_id)
    procedure = get_procedure(data.procedure)
    case = Case(id=new_id("case"), patient_id=data.patient_id, procedure=procedure.code)
    session.add(case)
    await session.flush()
    for requirement in procedure.requirements:
        session.add(
            CaseRequirement(
                case_id=case.id,
                requirement_code=requirement.code,
                requirement=requirement.name,
                status=RequirementStatus.MISSING,
                evidence=[],
            )
        )
    session.add(CaseRecord(case_id=case.id, bundle=empty_bundle(case.id)))
    await session.flush()
    return case


async def get_case(session: AsyncSession, *, case_id: str, principal: Principal | None = None) -> Case:
    """The case, if it exists and `principal` (when given) may see it (404 / 403)."""
    case = await session.get(Case, case_id)
    if case is None:
        raise NotFound(f"no case {case_id}")
    if principal is not None:
        ensure_patient(principal, case.patient_id)
    return case


async def read_requirements(session: AsyncSession, *, case: Case) -> RequirementsRead:
    procedure = get_procedure(case.procedure)
    rows = {
        row.requirement_code: row
        for row in await session.scalars(select(CaseRequirement).where(CaseRequirement.case_id == case.id))
    }
    items = []
    for requirement in procedure.requirements:
        row = rows.get(requirement.code)
        items.append(
            RequirementItem(
                requirement=requirement.name,
                code=requirement.code,
                kind=requirement.kind,
                status=row.status if row else RequirementStatus.MISSING,
                evidence=row.evidence if row else [],
            )
        )
    return RequirementsRead(procedure=procedure.code, procedure_name=procedure.name, items=items)
