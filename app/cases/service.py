"""Cases: create one (with its requirement checklist), fetch one, read and record its checklist."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, column, delete, exists, select, table
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.dependencies import ensure_patient
from app.auth.tokens import Principal
from app.cases.models import Case, CaseRequirement, RequirementStatus
from app.cases.schemas import CaseCreate, RequirementItem, RequirementsRead
from app.ehr.service import add_empty_record
from app.errors import NotFound
from app.ids import new_id
from app.matching.schemas import MatchStatus, RequirementMatch
from app.patients.service import get_patient
from app.procedures.catalog import get_procedure
from app.runtime.models import Event


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
    add_empty_record(session, case_id=case.id)
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


async def lock_case(session: AsyncSession, *, case_id: str) -> Case:
    """The case, its row locked until the transaction ends (serialises writers of one case)."""
    case = await session.get(Case, case_id, with_for_update=True)
    if case is None:
        raise NotFound(f"no case {case_id}")
    return case


async def record_requirements(
    session: AsyncSession, *, case_id: str, matches: list[RequirementMatch]
) -> dict[str, int]:
    """Write each requirement's status and evidence; returns how many are satisfied and missing."""
    query = select(CaseRequirement).where(CaseRequirement.case_id == case_id)
    rows = {row.requirement_code: row for row in await session.scalars(query)}
    for match in matches:
        row = rows.get(match.requirement.code)
        if row is None:
            row = CaseRequirement(
                case_id=case_id, requirement_code=match.requirement.code, requirement=match.requirement.name
            )
            session.add(row)
        row.status = match.status
        row.evidence = [e.model_dump(mode="json") for e in match.evidence]
    satisfied = sum(1 for m in matches if m.status == MatchStatus.SATISFIED)
    return {"satisfied": satisfied, "missing": len(matches) - satisfied}


# -- intake sessions without documents (reminders, cleanup) -----------------------------------

_DOCUMENTS = table("documents", column("case_id"))  # only the foreign key, not the documents model


def _without_documents() -> ColumnElement[bool]:
    return ~exists().where(_DOCUMENTS.c.case_id == Case.id)


def _quiet_since(moment: datetime) -> ColumnElement[bool]:
    return ~exists().where(Event.case_id == Case.id, Event.created_at >= moment)


async def incomplete_intakes(
    session: AsyncSession, *, created_before: datetime, created_after: datetime, after: str, limit: int
) -> list[Case]:
    """Cases opened in (`created_after`, `created_before`) that still have no document, by ID."""
    query = (
        select(Case)
        .where(Case.id > after, Case.created_at < created_before, Case.created_at > created_after)
        .where(_without_documents())
        .order_by(Case.id)
        .limit(limit)
    )
    return list(await session.scalars(query))


async def stale_cases(session: AsyncSession, *, before: datetime, after: str, limit: int) -> list[str]:
    """Stale intake sessions: cases opened before `before` with no document and no event since."""
    query = (
        select(Case.id)
        .where(Case.id > after, Case.created_at < before, _without_documents(), _quiet_since(before))
        .order_by(Case.id)
        .limit(limit)
    )
    return list(await session.scalars(query))


async def delete_stale_cases(session: AsyncSession, *, case_ids: list[str], before: datetime) -> int:
    """Delete those cases that are still stale (re-checked in the same statement); how many."""
    if not case_ids:
        return 0
    result = await session.execute(
        delete(Case)
        .where(Case.id.in_(case_ids), Case.created_at < before, _without_documents(), _quiet_since(before))
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0
