"""Every fact the offline agent returns carries its page, the text span it came from and its rule."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.extraction.offline import extract_text
from app.extraction.schemas import Extraction
from bench.extraction_eval import EVAL_SET
from tests.extraction.support import expected, pdf_pages

EVAL_DOCUMENTS = sorted(k for k in json.loads((EVAL_SET / "expected.json").read_text()) if not k.startswith("_"))
PDF_FIXTURES = sorted(n for n, w in expected().items() if isinstance(w, dict) and w.get("expect") == "analyzed")


def facts(extraction: Extraction) -> list[Any]:
    return [*extraction.conditions, *extraction.medications, *extraction.allergies, *extraction.labs,
            *extraction.studies]


def assert_every_fact_has_provenance(pages: list[str], extraction: Extraction) -> None:
    spans = [f.provenance for f in facts(extraction)] + (
        [extraction.procedure_provenance] if extraction.recommended_procedure else [])
    for provenance in spans:
        assert provenance is not None
        assert 1 <= provenance.page <= len(pages)
        assert provenance.text.strip()
        assert pages[provenance.page - 1][provenance.start:provenance.end] == provenance.text


@pytest.mark.parametrize("name", EVAL_DOCUMENTS)
def test_every_fact_of_an_eval_document_has_a_page_and_span(name: str) -> None:
    pages = (EVAL_SET / name).read_text(encoding="utf-8").split("\f")
    assert_every_fact_has_provenance(pages, extract_text(pages))


@pytest.mark.parametrize("name", PDF_FIXTURES)
def test_every_fact_of_a_fixture_pdf_has_a_page_and_span(name: str) -> None:
    pages = pdf_pages(name)
    assert_every_fact_has_provenance(pages, extract_text(pages))


def test_spans_are_in_the_original_text_with_its_accents_and_on_their_page() -> None:
    pages = ["Diagnostics : hypertension artérielle.", "Traitement : métformine 1000 mg deux fois par jour."]
    extraction = extract_text(pages)
    condition, medication = extraction.conditions[0], extraction.medications[0]
    assert (condition.provenance.page, condition.provenance.text) == (1, "hypertension artérielle")
    assert (medication.provenance.page, medication.provenance.text) == (2, "métformine 1000 mg deux fois par jour")


def test_each_fact_names_the_rule_that_read_it() -> None:
    text = ("Diagnoses: CAD (ICD-10 I25.10). Unstable angina (ICD-10 I20.0). Right knee osteoarthritis.\n"
            "Morbid obesity, BMI 43. Allergic to codeine. Hb 13.2 g/dL. ECG: sinus rhythm.\nPlan: total knee replacement.")
    extraction = extract_text([text])
    rules = {c.code: (c.provenance.rule, c.provenance.text) for c in extraction.conditions}
    assert rules == {"I25.110": ("combination", "I25.10"), "M17.11": ("site-term", "knee osteoarthritis"),
                     "E66.01": ("vocabulary-term", "Morbid obesity"), "Z68.41": ("bmi", "BMI 43")}
    assert extraction.allergies[0].provenance.rule == "allergy-statement"
    assert (extraction.labs[0].provenance.rule, extraction.labs[0].provenance.text) == ("lab-reading", "Hb 13.2 g/dL")
    assert extraction.studies[0].provenance.text == "ECG"
    assert (extraction.procedure_provenance.rule, extraction.procedure_provenance.text) == (
        "recommendation", "total knee replacement")
