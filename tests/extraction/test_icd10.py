"""Every code is a valid, billable ICD-10-CM code, coded by the tabular list's own rules."""

from __future__ import annotations

import json

import pytest

from app.extraction.canonical import canonicalise
from app.extraction.icd10 import billable_code, cm, coherent_codes, is_billable
from app.extraction.schemas import Condition, Extraction
from app.extraction.vocabulary import TERMS_PATH, VOCABULARY_PATH, default_vocabulary
from tests.extraction.support import codes, expected, extract, pdf_pages
from tests.extraction.test_fixtures import SCANNED_NOTE_OCR

TEXT_FIXTURES = sorted(
    name
    for name, want in expected().items()
    if isinstance(want, dict) and "conditions" in want and name != "scanned_note_image_only.pdf"
)


def vocabulary_codes() -> set[str]:
    data = json.loads(VOCABULARY_PATH.read_text(encoding="utf-8"))
    found = {c["code"] for c in data["conditions"]} | set(data["icd10_displays"])
    found |= {
        code
        for s in data["site_conditions"]
        for sides in s["codes"].values()
        for key, code in sides.items()
        if key != "tabular"
    }
    found |= {code for code in data["icd10_history_codes"].values()}
    found |= {p["code"] for p in data["icd10_status_patterns"]}
    found |= set(data["icd10_long_term_therapy"]["codes"].values())
    found |= set(json.loads(TERMS_PATH.read_text(encoding="utf-8"))["terms"].values())
    return found | {c["code"] for c in data["icd10_combinations"]}


def test_every_vocabulary_code_is_billable() -> None:
    invalid = sorted(code for code in vocabulary_codes() if not is_billable(code))
    assert invalid == []


def test_tabular_site_codes_are_parent_codes_that_refine_to_billable_codes() -> None:
    data = json.loads(VOCABULARY_PATH.read_text(encoding="utf-8"))
    categories = [
        sides["tabular"] for s in data["site_conditions"] for sides in s["codes"].values() if "tabular" in sides
    ]
    assert categories
    for category in categories:
        assert cm.is_valid_item(category) and not cm.is_leaf(category), category
        assert billable_code(category, "") is None or is_billable(billable_code(category, "") or ""), category
    for sides in (sides for s in data["site_conditions"] for sides in s["codes"].values() if "tabular" in sides):
        assert sides["unspecified"].startswith(sides["tabular"]) and is_billable(sides["unspecified"]), sides
    assert billable_code("C50", "left breast upper outer quadrant female") == "C50.412"
    assert billable_code("S83.2", "bucket handle tear of the medial meniscus right knee") == "S83.211A"


@pytest.mark.parametrize("name", TEXT_FIXTURES)
def test_every_code_extracted_from_a_fixture_is_billable(name: str) -> None:
    found = codes(extract("\n".join(pdf_pages(name))))
    assert all(is_billable(code) for code in found), found
    assert set(expected()[name]["conditions"]) <= found


def test_every_code_extracted_from_the_scanned_note_is_billable() -> None:
    found = codes(extract(SCANNED_NOTE_OCR))
    assert "M54.16" in found and all(is_billable(code) for code in found)


def test_a_made_up_extension_is_cut_back_to_the_valid_code() -> None:
    assert billable_code("I10.90") == "I10"
    assert codes(extract("Assessment: essential hypertension (ICD-10 I10.90).")) == {"I10"}


def test_a_category_is_refined_by_its_sentence_or_else_unspecified() -> None:
    assert billable_code("M16.1", "Primary osteoarthritis of the right hip") == "M16.11"
    assert billable_code("M16.1") == "M16.10"
    assert billable_code("I25.1") == "I25.10"
    assert billable_code("I25.1", "native coronary artery with unstable angina") == "I25.110"


def test_a_code_that_does_not_exist_is_dropped() -> None:
    assert billable_code("Q99.99.9") == "Q99.9"
    assert billable_code("U99") is None
    assert codes(extract("Diagnosis: (ICD-10 W99.9) nothing known.")) == set()


def test_unspecified_and_specific_of_one_category_keep_the_specific() -> None:
    text = "Diagnoses: osteoarthritis of hip (ICD-10 M16.9); left hip osteoarthritis (ICD-10 M16.12); hip OA (M16.1)."
    assert codes(extract(text)) == {"M16.12"}


def test_diabetes_without_complications_is_dropped_next_to_a_complication_code() -> None:
    assert coherent_codes(["E11.9", "E11.65", "I10"]) == ["E11.65", "I10"]


def test_atherosclerotic_heart_disease_with_angina_is_one_combination_code() -> None:
    combinations = default_vocabulary().combinations
    assert coherent_codes(["I25.10", "I20.0", "E78.5"], combinations) == ["I25.110", "E78.5"]
    text = "Diagnoses: CAD (ICD-10 I25.10). Unstable angina (ICD-10 I20.0)."
    assert codes(extract(text)) == {"I25.110"}


def test_hypertension_with_heart_failure_and_kidney_disease_is_coded_as_a_combination() -> None:
    combinations = default_vocabulary().combinations
    assert coherent_codes(["I10", "I50.9"], combinations) == ["I11.0", "I50.9"]
    assert coherent_codes(["I10", "N18.30"], combinations) == ["I12.9", "N18.30"]
    assert coherent_codes(["I10", "I50.9", "N18.6"], combinations) == ["I13.2", "I50.9", "N18.6"]


def test_excludes1_pairs_never_appear_together() -> None:
    assert coherent_codes(["M54.16", "M51.16"]) == ["M51.16"]
    assert coherent_codes(["I20.0", "I25.110"]) == ["I25.110"]
    assert coherent_codes(["E10.9", "R73.9"]) == ["E10.9"]


def test_the_llm_agents_codes_are_made_billable_or_dropped() -> None:
    extraction = canonicalise(
        Extraction(
            conditions=[
                Condition(code="I10.90", display="Hypertension"),
                Condition(code="not-a-code", display="Type 2 diabetes mellitus"),
                Condition(code="X00.000", display="something the vocabulary does not know"),
                Condition(code="M16.1", display="Osteoarthritis of right hip"),
            ]
        )
    )
    assert [c.code for c in extraction.conditions] == ["I10", "E11.9", "M16.11"]
    assert all(is_billable(c.code) for c in extraction.conditions)


def test_uncomplicated_gives_way_to_a_combination_code_of_its_category() -> None:
    assert codes(extract("PMH: asthma.\nImpression: asthma exacerbation.")) == {"J45.901"}


def test_a_site_coded_term_gives_way_to_a_code_the_document_states_in_its_category() -> None:
    text = "Findings: L5-S1 disc extrusion compressing the S1 root.\nImpression: radiculopathy (ICD-10 M51.17)."
    assert codes(extract(text)) == {"M51.17"}


def test_a_bmi_is_coded_only_next_to_obesity() -> None:
    assert codes(extract("Diagnoses: morbid obesity. BMI 43.")) == {"E66.01", "Z68.41"}
    assert codes(extract("Diagnóstico: obesidad. IMC 31,5.")) == {"E66.9", "Z68.31"}
    assert codes(extract("Hypertension. BMI 43.")) == {"I10"}


def test_portuguese_cid_label_states_a_code() -> None:
    assert codes(extract("Hipótese diagnóstica: coxartrose direita (CID-10 M16.11).")) == {"M16.11"}


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Coronary artery disease with stable angina.", "I25.118"),
        ("Diagnoses: CAD with angina.", "I25.119"),
        ("Koronare Herzkrankheit mit Angina pectoris.", "I25.119"),
        ("Cardiopatía isquémica. Angina inestable.", "I25.110"),
    ],
)
def test_with_angina_never_becomes_without_angina(text: str, code: str) -> None:
    assert codes(extract(text)) == {code}


def test_a_symptom_integral_to_a_diagnosis_is_not_coded_separately() -> None:
    assert codes(extract("Chest pain (ICD-10 R07.9). NSTEMI (ICD-10 I21.4).")) == {"I21.4"}
    assert codes(extract("Chest pain (ICD-10 R07.9). Hypothyroidism.")) == {"R07.9", "E03.9"}


def test_a_stated_code_is_not_recombined_with_a_term_found_elsewhere() -> None:
    text = "Diagnosis: coronary artery disease (ICD-10 I25.10).\nHPI: exertional chest pain, CCS class III angina."
    assert codes(extract(text)) == {"I25.10"}


def test_a_past_procedure_that_leaves_an_implant_gives_its_status_code() -> None:
    assert codes(extract("Status post right TKA in 2019.\nPlan: left total knee replacement.")) == {"Z96.651"}
    assert codes(extract("s/p CABG (2015). Stable.")) == {"Z95.1"}
    assert codes(extract("Zustand nach Hüft-TEP links 2018.")) == {"Z96.642"}
    assert codes(extract("Family history: father had CABG.")) == set()
    assert codes(extract("Recommend total hip arthroplasty.")) == set()


@pytest.mark.parametrize(
    "text",
    [
        "Poorly controlled type 2 diabetes mellitus.",
        "Diabetes mellitus tipo 2 con mal control.",
        "Diabetes mellitus Typ 2, schlecht eingestellt.",
        "Diabète de type 2 mal équilibré.",
        "Diabetes mellitus tipo 2 descompensado.",
        "Kontrolsüz tip 2 diyabet.",
    ],
)
def test_poorly_controlled_diabetes_is_coded_with_hyperglycemia(text: str) -> None:
    assert codes(extract(text)) == {"E11.65"}


def test_a_modifier_of_the_next_condition_does_not_modify_this_one() -> None:
    assert codes(extract("Type 2 diabetes and uncontrolled hypertension.")) == {"E11.9", "I10"}
