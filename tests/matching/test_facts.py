"""`document_facts`: one document's extraction as the facts the matcher compares."""

from __future__ import annotations

from app.matching.facts import SNIPPET_CHARS, document_facts
from app.matching.schemas import FactKind

EXTRACTION = {
    "conditions": [{"code": "I25.10", "display": "Coronary artery disease"}],
    "medications": [{"name": "aspirin", "dose": "81 mg"}],
    "allergies": [{"substance": "penicillin"}],
    "labs": [{"name": "HbA1c", "value": 6.1, "unit": "%"}, {"name": "eGFR", "value": 85, "unit": None}],
    "studies": [{"name": "echocardiogram"}, "coronary angiography"],
    "recommended_procedure": "CABG",
}


def test_every_kind_of_finding_becomes_a_fact_in_a_stable_order():
    facts = document_facts("doc_1", EXTRACTION)

    assert [(f.kind, f.name) for f in facts] == [
        (FactKind.CONDITION, "Coronary artery disease"),
        (FactKind.LAB, "HbA1c"),
        (FactKind.LAB, "eGFR"),
        (FactKind.STUDY, "echocardiogram"),
        (FactKind.STUDY, "coronary angiography"),
        (FactKind.MEDICATION, "aspirin"),
        (FactKind.ALLERGY, "penicillin"),
        (FactKind.PROCEDURE, "CABG"),
    ]
    assert {f.document_id for f in facts} == {"doc_1"}


def test_snippets_name_the_code_and_the_lab_value_with_its_unit():
    facts = {f.name: f for f in document_facts("doc_1", EXTRACTION)}

    assert facts["Coronary artery disease"].snippet == "I25.10 Coronary artery disease"
    assert (facts["HbA1c"].value, facts["HbA1c"].unit, facts["HbA1c"].snippet) == (6.1, "%", "HbA1c 6.1 %")
    assert facts["eGFR"].snippet == "eGFR 85"


def test_the_first_page_becomes_one_text_fact_with_whitespace_collapsed():
    page = "DISCHARGE   SUMMARY\n\nCardiology " + "x" * 400

    [heading] = [f for f in document_facts("doc_1", {}, page) if f.kind == FactKind.TEXT]

    assert heading.snippet.startswith("DISCHARGE SUMMARY Cardiology x")
    assert len(heading.snippet) == SNIPPET_CHARS
    assert heading.name == heading.snippet[:80]


def test_an_empty_extraction_without_text_has_no_facts():
    assert document_facts("doc_1", {}, "  \n ") == []
    assert document_facts("doc_1", {"conditions": None, "recommended_procedure": None}) == []
