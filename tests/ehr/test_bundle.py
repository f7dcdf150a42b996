"""The case Bundle: valid, deduplicated across documents, latest lab value, provenance kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fhir.resources.R4B.bundle import Bundle

from app.ehr.bundle import build_bundle
from app.ehr.fhir import SOURCE_DOCUMENT, provenance_of, to_fhir
from app.extraction.offline import extract_text
from app.extraction.schemas import Allergy, Condition, Extraction, Lab, Medication, Provenance
from tests.extraction.support import pdf_pages

PATIENT = "Patient/pat_1"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def resources(document_id: str, extraction: Extraction) -> list[dict]:
    valid, issues = to_fhir(extraction, patient_ref=PATIENT, document_id=document_id)
    assert issues == []
    return valid


def entries(bundle: dict, kind: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def sources(resource: dict) -> list[str]:
    return [e["valueString"] for e in resource["extension"] if e["url"] == SOURCE_DOCUMENT]


OLDER = Extraction(
    conditions=[Condition(code="I10", display="Essential (primary) hypertension")],
    medications=[Medication(name="ramipril", dose="5 mg", frequency="once daily")],
    allergies=[Allergy(substance="penicillin", reaction="rash")],
    labs=[Lab(name="hemoglobin", value=11.9, unit="g/dL"), Lab(name="creatinine", value=1.0, unit="mg/dL")],
    recommended_procedure="total hip arthroplasty",
)
NEWER = Extraction(
    conditions=[
        Condition(code="I10", display="Essential (primary) hypertension"),
        Condition(code="E11.9", display="Type 2 diabetes mellitus without complications"),
    ],
    medications=[Medication(name="ramipril", dose="10 mg", frequency="once daily")],
    allergies=[Allergy(substance="penicillin")],
    labs=[Lab(name="hemoglobin", value=13.4, unit="g/dL")],
    recommended_procedure="total hip arthroplasty",
)


def two_documents() -> dict:
    # Given newest first on purpose: order comes from analysed_at, not from the list.
    return build_bundle(
        "case_1",
        PATIENT,
        [
            ("doc_new", T0 + timedelta(days=7), resources("doc_new", NEWER)),
            ("doc_old", T0, resources("doc_old", OLDER)),
        ],
    )


def test_bundle_is_a_valid_r4b_collection() -> None:
    bundle = two_documents()
    assert bundle["type"] == "collection"
    Bundle.model_validate(bundle)
    assert all(e["fullUrl"] == f"urn:uuid:{e['resource']['id']}" for e in bundle["entry"])
    assert bundle["timestamp"] == "2026-03-08T09:00:00Z"


def test_same_condition_in_two_documents_appears_once_with_both_sources() -> None:
    conditions = entries(two_documents(), "Condition")
    by_code = {c["code"]["coding"][0]["code"]: c for c in conditions}
    assert sorted(by_code) == ["E11.9", "I10"]
    assert sources(by_code["I10"]) == ["doc_old", "doc_new"]
    assert sources(by_code["E11.9"]) == ["doc_new"]


def test_lab_in_two_documents_keeps_the_latest_value() -> None:
    labs = {o["code"]["text"]: o for o in entries(two_documents(), "Observation")}
    assert labs["hemoglobin"]["valueQuantity"]["value"] == 13.4
    assert labs["hemoglobin"]["issued"] == "2026-03-08T09:00:00Z"
    assert sources(labs["hemoglobin"]) == ["doc_old", "doc_new"]
    assert labs["creatinine"]["valueQuantity"]["value"] == 1.0  # only in the older document


def test_medication_allergy_and_procedure_appear_once() -> None:
    bundle = two_documents()
    assert [m["medicationCodeableConcept"]["text"] for m in entries(bundle, "MedicationStatement")] == ["ramipril"]
    assert [a["code"]["text"] for a in entries(bundle, "AllergyIntolerance")] == ["penicillin"]
    assert [s["code"]["text"] for s in entries(bundle, "ServiceRequest")] == ["total hip arthroplasty"]


def test_every_entry_is_about_the_case_patient() -> None:
    for entry in two_documents()["entry"]:
        resource = entry["resource"]
        assert (resource.get("subject") or resource.get("patient")) == {"reference": PATIENT}


def test_rebuilding_gives_the_same_bundle() -> None:
    assert two_documents() == two_documents()


def test_fixture_documents_aggregate_into_one_valid_bundle() -> None:
    docs = [
        (name, T0 + timedelta(hours=i), resources(name, extract_text(pdf_pages(name))))
        for i, name in enumerate(
            ["discharge_summary_cardiology.pdf", "lab_report_panel.pdf", "referral_letter_hip.pdf"]
        )
    ]
    bundle = build_bundle("case_2", PATIENT, docs)
    Bundle.model_validate(bundle)
    labs = {o["code"]["text"]: o["valueQuantity"]["value"] for o in entries(bundle, "Observation")}
    assert labs["hemoglobin"] == 12.9  # the referral letter was analysed last
    assert labs["ldl cholesterol"] == 128  # lab report after the discharge summary
    codes = [c["code"]["coding"][0]["code"] for c in entries(bundle, "Condition")]
    assert len(codes) == len(set(codes)) and {"I25.10", "M16.12"} <= set(codes)


def test_entries_keep_the_provenance_of_every_supporting_document() -> None:
    def at(page: int, text: str) -> Provenance:
        return Provenance(page=page, start=0, end=len(text), text=text, rule="vocabulary-term")

    older = Extraction(
        conditions=[Condition(code="I10", display="Hypertension", provenance=at(1, "hypertension"))],
        labs=[Lab(name="hemoglobin", value=11.9, unit="g/dL", provenance=at(2, "Hb 11.9"))],
    )
    newer = Extraction(
        conditions=[Condition(code="I10", display="Hypertension", provenance=at(3, "HTN"))],
        labs=[Lab(name="hemoglobin", value=13.4, unit="g/dL", provenance=at(1, "Hb 13.4"))],
    )
    bundle = build_bundle(
        "case_6",
        PATIENT,
        [
            ("doc_new", T0 + timedelta(days=1), resources("doc_new", newer)),
            ("doc_old", T0, resources("doc_old", older)),
        ],
    )
    Bundle.model_validate(bundle)
    [condition] = entries(bundle, "Condition")
    assert [(p["document"], p["page"], p["text"]) for p in provenance_of(condition)] == [
        ("doc_old", 1, "hypertension"),
        ("doc_new", 3, "HTN"),
    ]
    [observation] = entries(bundle, "Observation")
    assert [(p["document"], p["text"]) for p in provenance_of(observation)] == [("doc_new", "Hb 13.4")]
    again = build_bundle(
        "case_6",
        PATIENT,
        [
            ("doc_old", T0, resources("doc_old", older)),
            ("doc_new", T0 + timedelta(days=1), resources("doc_new", newer)),
        ],
    )
    assert again == bundle


def test_a_stored_resource_that_is_no_longer_valid_is_reported_not_dropped() -> None:
    broken = resources("doc_1", Extraction(labs=[Lab(name="hemoglobin", value=13.0, unit="g/dL")]))
    broken[0]["valueQuantity"]["code"] = "gm/dl"
    bundle = build_bundle("case_3", PATIENT, [("doc_1", T0, broken)])
    assert entries(bundle, "Observation") == []
    [outcome] = entries(bundle, "OperationOutcome")
    assert "hemoglobin" in outcome["issue"][0]["diagnostics"] and "doc_1" in outcome["issue"][0]["diagnostics"]
    Bundle.model_validate(bundle)


def test_case_without_documents_is_an_empty_collection() -> None:
    bundle = build_bundle("case_4", PATIENT, [])
    assert bundle["entry"] == [] and bundle["type"] == "collection"
    Bundle.model_validate(bundle)


def test_naive_and_iso_string_times_are_read_as_utc() -> None:
    bundle = build_bundle(
        "case_5",
        PATIENT,
        [
            ("doc_a", "2026-03-01T09:00:00", resources("doc_a", OLDER)),
            ("doc_b", datetime(2026, 3, 2, 9, 0), resources("doc_b", NEWER)),
        ],
    )
    labs = {o["code"]["text"]: o for o in entries(bundle, "Observation")}
    assert labs["hemoglobin"]["valueQuantity"]["value"] == 13.4
