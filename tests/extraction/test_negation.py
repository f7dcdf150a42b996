"""Negated, family-history, ruled-out and stopped mentions produce nothing."""

from __future__ import annotations

import pytest

from tests.extraction.support import codes, extract, med_names


def test_negated_conditions_are_not_extracted() -> None:
    text = """Denies chest pain. No evidence of diabetes. No history of hypertension or stroke.
Pulmonary embolism was ruled out. Asthma: excluded.
Atrial fibrillation on ECG."""
    assert codes(extract(text)) == {"I48.91"}


def test_family_history_is_not_the_patient() -> None:
    text = """Family history of breast cancer and myocardial infarction.
Mother has type 2 diabetes. Father: hypertension.
FAMILY HISTORY
Brother with COPD.
SOCIAL HISTORY
Non-smoker.
Diagnosis: hypothyroidism."""
    assert codes(extract(text)) == {"E03.9"}


@pytest.mark.parametrize("text", [
    "ALLERGIES: No known drug allergies.",
    "Allergies: NKDA",
    "No known allergies.",
    "Allergies: none known.",
    "No allergy to penicillin.",
    "Denies allergies to penicillin or latex.",
    "Sin alergias medicamentosas conocidas.",
    "Keine bekannten Allergien.",
    "Pas d'allergie connue.",
    "Bilinen ilaç alerjisi yok.",
    "Penisilin alerjisi yok.",
])
def test_no_known_allergies_gives_none(text: str) -> None:
    assert extract(text).allergies == []


def test_allergy_exception_after_a_negation_is_kept() -> None:
    extraction = extract("No known drug allergies except penicillin (anaphylaxis).")
    assert [(a.substance, a.reaction) for a in extraction.allergies] == [("penicillin", "anaphylaxis")]


def test_stopped_and_negated_medications_are_not_current() -> None:
    text = "Not on warfarin. Aspirin was discontinued last week. Continues metformin 500 mg bid."
    assert med_names(extract(text)) == {"metformin"}


def test_allergen_drugs_are_not_medications() -> None:
    extraction = extract("Allergic to amoxicillin and codeine (nausea).\nMedications: paracetamol 1 g qds prn.")
    assert {a.substance for a in extraction.allergies} == {"amoxicillin", "codeine"}
    assert med_names(extraction) == {"paracetamol"}


def test_historical_procedure_is_not_the_recommendation() -> None:
    text = "Past surgical history: CABG 2015.\nStatus post right TKA in 2019.\nPlan: left total knee replacement."
    assert extract(text).recommended_procedure == "total knee arthroplasty"
    assert extract("s/p CABG (2015). Stable.").recommended_procedure is None


def test_declined_procedure_is_not_recommended() -> None:
    assert extract("Not a candidate for total knee arthroplasty.").recommended_procedure is None


def test_st_depression_is_not_depression() -> None:
    assert codes(extract("ECG: 1 mm ST depression in V5-V6.")) == set()


def test_test_names_are_not_conditions() -> None:
    text = "Hepatitis B surface antigen Negative\nHIV 1/2 antibody Negative\nDiabetes screening: HbA1c 5.2 %"
    assert codes(extract(text)) == set()


def test_continued_medication_is_kept_when_another_is_stopped_after_it() -> None:
    text = "Advised to continue metformin 500 mg twice a day and to stop ibuprofen."
    assert [(m.name, m.dose, m.frequency) for m in extract(text).medications] == [("metformin", "500 mg", "twice daily")]


def test_pending_requested_or_not_performed_studies_are_not_studies() -> None:
    text = "Echocardiogram was not performed. Coronary angiography pending. Awaiting MRI knee. ECG done today: sinus rhythm."
    assert [s.name for s in extract(text).studies] == ["ecg"]


def test_non_prefix_negates_but_non_insulin_dependent_is_a_diagnosis() -> None:
    assert codes(extract("Non-diabetic. Normotensive.")) == set()
    assert codes(extract("Non-insulin-dependent diabetes mellitus since 2010.")) == {"E11.9"}


def test_screening_and_risk_statements_are_not_diagnoses() -> None:
    assert codes(extract("Screening for diabetes was normal. Risk of stroke discussed.")) == set()
