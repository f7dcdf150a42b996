"""Extractions map to valid FHIR R4B resources; what cannot be valid becomes an issue."""

from __future__ import annotations

import math

import pytest
from fhir.resources.R4B import get_fhir_model_class

from app.ehr.fhir import ICD10_CM_SYSTEM, SOURCE_DOCUMENT, UCUM_SYSTEM, provenance_of, to_fhir
from app.extraction.offline import extract_text
from app.extraction.schemas import Allergy, Condition, Extraction, Lab, Medication, Provenance
from bench.extraction_eval import EVAL_SET, HELDOUT_SET
from tests.extraction.support import expected, pdf_pages
from tests.extraction.test_fixtures import ANALYZED, SCANNED_NOTE_OCR

PATIENT = "Patient/pat_1"


def by_type(resources: list[dict], kind: str) -> list[dict]:
    return [r for r in resources if r["resourceType"] == kind]


def expected_extraction(name: str) -> Extraction:
    """The extraction expected.json describes, independent of any extractor."""
    want = expected()[name]
    return Extraction(
        conditions=[Condition(code=c, display=c) for c in want["conditions"]],
        medications=[Medication(name=m) for m in want["medications"]],
        allergies=[Allergy(substance=a) for a in want["allergies"]],
        labs=[Lab(name=n, value=v, unit=u) for n, v, u in want.get("labs", [])],
        recommended_procedure=want["recommended_procedure"],
    )


@pytest.mark.parametrize("name", [*ANALYZED, "scanned_note_image_only.pdf"])
def test_each_fixture_expected_extraction_maps_to_valid_resources(name: str) -> None:
    extraction = expected_extraction(name)
    resources, issues = to_fhir(extraction, patient_ref=PATIENT, document_id="doc_1")
    assert issues == []
    items = (
        len(extraction.conditions)
        + len(extraction.medications)
        + len(extraction.allergies)
        + len(extraction.labs)
        + (extraction.recommended_procedure is not None)
    )
    assert len(resources) == items
    for resource in resources:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)


@pytest.mark.parametrize("name", ANALYZED)
def test_each_fixture_offline_extraction_maps_without_issues(name: str) -> None:
    resources, issues = to_fhir(extract_text(pdf_pages(name)), patient_ref=PATIENT, document_id="doc_1")
    assert issues == [] and resources


@pytest.mark.parametrize("directory", [EVAL_SET, HELDOUT_SET], ids=["eval", "heldout"])
def test_every_evaluation_document_maps_to_valid_resources_with_provenance(directory) -> None:
    for path in sorted(directory.glob("*.txt")):
        pages = path.read_text(encoding="utf-8").split("\f")
        resources, issues = to_fhir(extract_text(pages), patient_ref=PATIENT, document_id=path.stem)
        assert issues == [], (path.name, issues)
        for resource in resources:
            [where] = provenance_of(resource)
            assert pages[where["page"] - 1][where["start"] : where["end"]] == where["text"], (path.name, resource)


def test_scanned_note_ocr_extraction_maps_without_issues() -> None:
    resources, issues = to_fhir(extract_text([SCANNED_NOTE_OCR]), patient_ref=PATIENT, document_id="doc_1")
    assert issues == []
    assert {r["resourceType"] for r in resources} == {"Condition", "MedicationStatement", "ServiceRequest"}


def test_resources_carry_codes_units_statuses_and_their_document() -> None:
    extraction = extract_text(pdf_pages("discharge_summary_cardiology.pdf"))
    resources, _ = to_fhir(extraction, patient_ref=PATIENT, document_id="doc_1")
    condition = by_type(resources, "Condition")[0]
    assert condition["code"]["coding"][0] == {
        "system": ICD10_CM_SYSTEM,
        "code": "I25.10",
        "display": condition["code"]["text"],
    }
    assert condition["subject"] == {"reference": PATIENT}
    assert condition["clinicalStatus"]["coding"][0]["code"] == "active"
    labs = {o["code"]["text"]: o for o in by_type(resources, "Observation")}
    assert labs["hemoglobin"]["valueQuantity"] == {"value": 13.2, "unit": "g/dL", "system": UCUM_SYSTEM, "code": "g/dL"}
    assert labs["hemoglobin"]["code"]["coding"] == [{"system": "http://loinc.org", "code": "718-7"}]
    assert labs["platelets"]["valueQuantity"]["code"] == "10*9/L"
    assert labs["inr"]["valueQuantity"]["code"] == "{INR}"
    assert labs["inr"]["category"][0]["coding"][0]["code"] == "laboratory"
    aspirin = next(
        m for m in by_type(resources, "MedicationStatement") if m["medicationCodeableConcept"]["text"] == "aspirin"
    )
    assert aspirin["status"] == "active" and aspirin["dosage"] == [{"text": "75 mg once daily"}]
    request = by_type(resources, "ServiceRequest")[0]
    assert (request["status"], request["intent"], request["code"]["text"]) == (
        "active",
        "proposal",
        "coronary artery bypass grafting",
    )
    assert all(r["extension"][0] == {"url": SOURCE_DOCUMENT, "valueString": "doc_1"} for r in resources)


def test_every_resource_carries_the_page_span_and_rule_of_its_fact() -> None:
    pages = pdf_pages("discharge_summary_cardiology.pdf")
    extraction = extract_text(pages)
    resources, issues = to_fhir(extraction, patient_ref=PATIENT, document_id="doc_1")
    assert issues == [] and resources
    for resource in resources:
        [where] = provenance_of(resource)
        assert where["document"] == "doc_1" and where["rule"]
        assert pages[where["page"] - 1][where["start"] : where["end"]] == where["text"]
    condition = next(r for r in by_type(resources, "Condition") if r["code"]["coding"][0]["code"] == "I25.10")
    assert "I25.10" in provenance_of(condition)[0]["text"] or "coronary" in provenance_of(condition)[0]["text"].lower()
    request = by_type(resources, "ServiceRequest")[0]
    assert provenance_of(request)[0]["rule"] == "recommendation"
    hemoglobin = next(o for o in by_type(resources, "Observation") if o["code"]["text"] == "hemoglobin")
    assert "h" in provenance_of(hemoglobin)[0]["text"].lower()


def test_a_fact_without_provenance_has_no_provenance_extension_and_stays_valid() -> None:
    provenance = Provenance(page=3, start=0, end=1, text=" ", rule="llm:test")
    extraction = Extraction(
        conditions=[Condition(code="I10", display="Hypertension")],
        medications=[Medication(name="ramipril", provenance=provenance)],
    )
    resources, issues = to_fhir(extraction, patient_ref=PATIENT, document_id="doc_1")
    assert issues == []
    condition, medication = resources
    assert provenance_of(condition) == []
    assert provenance_of(medication) == [{"document": "doc_1", "page": 3, "start": 0, "end": 1, "rule": "llm:test"}]


def test_allergy_reaction_becomes_a_manifestation() -> None:
    resources, issues = to_fhir(
        Extraction(allergies=[Allergy(substance="penicillin", reaction="rash")]),
        patient_ref=PATIENT,
        document_id="doc_1",
    )
    assert issues == []
    assert resources[0]["patient"] == {"reference": PATIENT}
    assert resources[0]["reaction"] == [{"manifestation": [{"text": "rash"}]}]


@pytest.mark.parametrize(
    ("extraction", "kind", "source", "words"),
    [
        (Extraction(labs=[Lab(name="hemoglobin", value=13.2, unit="gm/dl")]), "Observation", "labs/0", "UCUM"),
        (Extraction(labs=[Lab(name="hemoglobin", value=math.nan, unit="g/dL")]), "Observation", "labs/0", "value"),
        (Extraction(conditions=[Condition(code="", display="hypertension")]), "Condition", "conditions/0", "code"),
        (
            Extraction(conditions=[Condition(code="hypertension", display="hypertension")]),
            "Condition",
            "conditions/0",
            "ICD-10-CM",
        ),
        (Extraction(medications=[Medication(name="")]), "MedicationStatement", "medications/0", "text"),
        (Extraction(recommended_procedure=""), "ServiceRequest", "recommended_procedure", "text"),
    ],
)
def test_invalid_items_become_issues_not_resources(extraction: Extraction, kind: str, source: str, words: str) -> None:
    resources, issues = to_fhir(extraction, patient_ref=PATIENT, document_id="doc_9")
    assert resources == []
    assert len(issues) == 1
    assert issues[0]["severity"] == "error" and issues[0]["resource_type"] == kind
    assert issues[0]["source"] == f"documents/doc_9/extraction/{source}"
    assert words in issues[0]["message"]


def test_an_invalid_item_does_not_hide_the_valid_ones() -> None:
    extraction = Extraction(
        labs=[Lab(name="hemoglobin", value=13.2, unit="g/dL"), Lab(name="mystery", value=1, unit="furlongs")]
    )
    resources, issues = to_fhir(extraction, patient_ref=PATIENT, document_id="doc_1")
    assert [r["code"]["text"] for r in resources] == ["hemoglobin"]
    assert [i["source"] for i in issues] == ["documents/doc_1/extraction/labs/1"]


def test_resource_ids_are_deterministic() -> None:
    extraction = extract_text(pdf_pages("referral_letter_hip.pdf"))
    first, _ = to_fhir(extraction, patient_ref=PATIENT, document_id="doc_1")
    again, _ = to_fhir(extraction, patient_ref=PATIENT, document_id="doc_1")
    other, _ = to_fhir(extraction, patient_ref=PATIENT, document_id="doc_2")
    assert first == again
    assert {r["id"] for r in first}.isdisjoint(r["id"] for r in other)
