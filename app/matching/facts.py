"""What one analysed document says, as the facts the matcher compares with requirements."""

from __future__ import annotations

from typing import Any

from app.matching.schemas import Fact, FactKind

SNIPPET_CHARS = 240
"""How much of a document's first page (its heading) becomes a free-text fact."""


def document_facts(document_id: str, extraction: dict[str, Any], first_page: str | None = None) -> list[Fact]:
    """The facts of one document's extraction, plus its heading when `first_page` has text."""
    facts = [*_clinical_facts(document_id, extraction), *_treatment_facts(document_id, extraction)]
    heading = " ".join((first_page or "").split())[:SNIPPET_CHARS]
    if heading:
        facts.append(Fact(document_id=document_id, kind=FactKind.TEXT, name=heading[:80], snippet=heading))
    return facts


def _clinical_facts(document_id: str, extraction: dict[str, Any]) -> list[Fact]:
    facts: list[Fact] = []
    for condition in extraction.get("conditions") or []:
        name = condition.get("display") or condition.get("code")
        snippet = f"{condition.get('code')} {name}"
        facts.append(Fact(document_id=document_id, kind=FactKind.CONDITION, name=name, snippet=snippet))
    for lab in extraction.get("labs") or []:
        snippet = f"{lab['name']} {lab.get('value')} {lab.get('unit') or ''}".strip()
        facts.append(
            Fact(
                document_id=document_id,
                kind=FactKind.LAB,
                name=lab["name"],
                value=lab.get("value"),
                unit=lab.get("unit"),
                snippet=snippet,
            )
        )
    for study in extraction.get("studies") or []:
        name = study["name"] if isinstance(study, dict) else str(study)
        facts.append(Fact(document_id=document_id, kind=FactKind.STUDY, name=name, snippet=name))
    return facts


def _treatment_facts(document_id: str, extraction: dict[str, Any]) -> list[Fact]:
    facts: list[Fact] = []
    for medication in extraction.get("medications") or []:
        name = medication["name"]
        facts.append(Fact(document_id=document_id, kind=FactKind.MEDICATION, name=name, snippet=name))
    for allergy in extraction.get("allergies") or []:
        name = allergy["substance"]
        facts.append(Fact(document_id=document_id, kind=FactKind.ALLERGY, name=name, snippet=name))
    if procedure := extraction.get("recommended_procedure"):
        facts.append(Fact(document_id=document_id, kind=FactKind.PROCEDURE, name=procedure, snippet=procedure))
    return facts
