"""The `embedding-match` stage: the case's requirements against what all its documents contain."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.cases.models import Case, CaseRequirement
from app.db import transaction
from app.documents.models import Document, DocumentPage
from app.matching.matcher import match_requirements
from app.matching.schemas import Fact, FactKind
from app.procedures.catalog import get_procedure
from app.runtime.events import record_event_once
from app.workflows.deps import PipelineDeps

SNIPPET_CHARS = 240
MAX_ROUNDS = 5


def facts_of(document_id: str, extraction: dict[str, Any]) -> list[Fact]:
    """What one document's extraction says, as facts the matcher compares with requirements."""
    facts: list[Fact] = []
    for condition in extraction.get("conditions") or []:
        name = condition.get("display") or condition.get("code")
        facts.append(Fact(document_id=document_id, kind=FactKind.CONDITION, name=name, snippet=f"{condition.get('code')} {name}"))
    for lab in extraction.get("labs") or []:
        snippet = f"{lab['name']} {lab.get('value')} {lab.get('unit') or ''}".strip()
        facts.append(Fact(document_id=document_id, kind=FactKind.LAB, name=lab["name"], value=lab.get("value"), unit=lab.get("unit"), snippet=snippet))
    for study in extraction.get("studies") or []:
        name = study["name"] if isinstance(study, dict) else str(study)
        facts.append(Fact(document_id=document_id, kind=FactKind.STUDY, name=name, snippet=name))
    for medication in extraction.get("medications") or []:
        facts.append(Fact(document_id=document_id, kind=FactKind.MEDICATION, name=medication["name"], snippet=medication["name"]))
    for allergy in extraction.get("allergies") or []:
        facts.append(Fact(document_id=document_id, kind=FactKind.ALLERGY, name=allergy["substance"], snippet=allergy["substance"]))
    if extraction.get("recommended_procedure"):
        procedure = extraction["recommended_procedure"]
        facts.append(Fact(document_id=document_id, kind=FactKind.PROCEDURE, name=procedure, snippet=procedure))
    return facts


async def _analysed_ids(session: AsyncSession, case_id: str) -> list[str]:
    query = select(Document.id).where(Document.case_id == case_id, Document.extraction.is_not(None)).order_by(Document.id)
    return list(await session.scalars(query))


async def _case_facts(deps: PipelineDeps, case_id: str) -> tuple[list[str], list[Fact]]:
    async with deps.sessions() as session:
        documents = list(
            await session.scalars(
                select(Document).where(Document.case_id == case_id, Document.extraction.is_not(None)).order_by(Document.id)
            )
        )
        first_pages = {
            row.document_id: row.text
            for row in await session.scalars(
                select(DocumentPage).where(DocumentPage.document_id.in_([d.id for d in documents]), DocumentPage.page_number == 1)
            )
        }
    facts: list[Fact] = []
    for document in documents:
        facts.extend(facts_of(document.id, document.extraction or {}))
        heading = " ".join((first_pages.get(document.id) or "").split())[:SNIPPET_CHARS]
        if heading:
            facts.append(Fact(document_id=document.id, kind=FactKind.TEXT, name=heading[:80], snippet=heading))
    return [d.id for d in documents], facts


async def match_case(deps: PipelineDeps, case_id: str, document_id: str) -> dict[str, int]:
    """Recompute the case's checklist from every analysed document; record it with evidence.

    Matching runs outside any transaction (it may call an embeddings API). The write then locks
    the case row and checks that the set of analysed documents is still the one matched; if
    another document was analysed meanwhile, it matches again, so the last write always covers
    every document.
    """
    async with deps.sessions() as session:
        case = await session.get(Case, case_id)
    assert case is not None
    procedure = get_procedure(case.procedure)
    for _ in range(MAX_ROUNDS):
        analysed, facts = await _case_facts(deps, case_id)
        matches = await match_requirements(procedure, facts, deps.embedder, deps.settings.match_threshold)
        async with transaction(deps.sessions) as session:
            await session.get(Case, case_id, with_for_update=True)
            if await _analysed_ids(session, case_id) != analysed:
                continue  # the transaction only read; nothing to undo
            summary = await _record(session, case_id, matches)
            await record_event_once(
                session, "document.requirements_matched", case_id=case_id, document_id=document_id, payload=summary
            )
            return summary
    raise RuntimeError(f"case {case_id} kept changing while its requirements were matched; retrying the step")


async def _record(session: AsyncSession, case_id: str, matches: list[Any]) -> dict[str, int]:
    rows = {
        r.requirement_code: r for r in await session.scalars(select(CaseRequirement).where(CaseRequirement.case_id == case_id))
    }
    for match in matches:
        row = rows.get(match.requirement.code)
        if row is None:
            row = CaseRequirement(case_id=case_id, requirement_code=match.requirement.code, requirement=match.requirement.name)
            session.add(row)
        row.status = match.status
        row.evidence = [e.model_dump(mode="json") for e in match.evidence]
    return {
        "satisfied": sum(1 for m in matches if m.status == "satisfied"),
        "missing": sum(1 for m in matches if m.status != "satisfied"),
    }
