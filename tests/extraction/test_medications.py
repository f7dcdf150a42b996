"""Medications apart from allergies: a drug on an allergy line is an allergy; stopped drugs and drugs
the patient does not take are not current; drugs in plans ("start", "weiter mit") are, in every
supported language."""

from __future__ import annotations

import pytest

from tests.extraction.support import extract, med_names


def substances(text: str) -> list[str]:
    return [a.substance for a in extract(text).allergies]


ALLERGY_LINES = [
    ("en", "Allergies: penicillin, metamizole. Medications: aspirin 100 mg daily.", ["penicillin", "metamizole"]),
    ("es", "Alergia a la penicilina y al ibuprofeno. Tratamiento: enalapril 10 mg.", ["penicillin", "ibuprofen"]),
    ("de", "Allergien: Penicillin, Metamizol (Exanthem).\nMedikation: ASS 100 mg 1-0-0.", ["penicillin", "metamizole"]),
    ("fr", "Allergie à la pénicilline et à l'amoxicilline. Traitement : ramipril 5 mg.", ["penicillin", "amoxicillin"]),
    ("pt", "Alergia a penicilina e dipirona. Medicação: losartana 50 mg 1x ao dia.", ["penicillin", "metamizole"]),
    ("tr", "Penisilin ve ibuprofen alerjisi var. İlaçlar: Metformin 1000 mg.", ["penicillin", "ibuprofen"]),
]
CURRENT = [
    ("en", "Warfarin was stopped in 2024. He does not take aspirin. Previously on simvastatin.\n"
           "Plan: start apixaban 5 mg twice daily. Continue metoprolol 50 mg.", {"apixaban", "metoprolol"}),
    ("es", "Plan: continuar con metformina 850 mg cada 12 horas. Se suspende el ibuprofeno. No toma warfarina. "
           "Iniciar atorvastatina 20 mg por la noche.", {"metformin", "atorvastatin"}),
    ("de", "Procedere: weiter mit Metformin 1000 mg 1-0-1, Ibuprofen abgesetzt, nimmt kein Marcumar. "
           "Beginn mit Apixaban 5 mg 1-0-1.", {"metformin", "apixaban"}),
    ("fr", "Conduite à tenir : poursuivre la metformine 1000 mg, arrêt de l'ibuprofène. Ne prend pas d'aspirine. "
           "Débuter apixaban 5 mg.", {"metformin", "apixaban"}),
    ("pt", "Conduta: manter metformina 850 mg, suspender ibuprofeno. Não usa varfarina. "
           "Iniciar apixabana 5 mg 2x ao dia.", {"metformin", "apixaban"}),
    ("tr", "Öneriler: Metformin 1000 mg devam, ibuprofen kesildi. Varfarin kullanmıyor. Apiksaban 5 mg başlandı.",
     {"metformin", "apixaban"}),
]


@pytest.mark.parametrize(("language", "text", "want"), ALLERGY_LINES, ids=[c[0] for c in ALLERGY_LINES])
def test_a_drug_on_an_allergy_line_is_an_allergy_not_a_medication(language: str, text: str, want: list[str]) -> None:
    extraction = extract(text)
    assert [a.substance for a in extraction.allergies] == want
    assert not set(want) & med_names(extraction)
    assert len(extraction.medications) == 1


@pytest.mark.parametrize(("language", "text", "want"), CURRENT, ids=[c[0] for c in CURRENT])
def test_stopped_and_not_taken_drugs_are_not_current_and_plans_are(language: str, text: str, want: set[str]) -> None:
    assert med_names(extract(text)) == want


def test_a_drug_the_allergen_list_does_not_know_is_an_allergy_on_an_allergy_line() -> None:
    extraction = extract("Allergies: lisinopril (angioedema).\nMedications: amlodipine 5 mg once daily.")
    assert [(a.substance, a.reaction) for a in extraction.allergies] == [("lisinopril", "angioedema")]
    assert med_names(extraction) == {"amlodipine"}


def test_discontinued_medications_section_gives_no_current_medication() -> None:
    text = "CURRENT MEDICATIONS\nRamipril 5 mg once daily\nDISCONTINUED MEDICATIONS\nWarfarin 5 mg\nAtenolol 50 mg"
    assert med_names(extract(text)) == {"ramipril"}


def test_plan_medications_keep_dose_and_frequency_in_other_languages() -> None:
    extraction = extract("Conduta: iniciar losartana 50 mg 1x ao dia e sinvastatina 20 mg à noite.")
    assert [(m.name, m.dose, m.frequency) for m in extraction.medications] == [
        ("losartan", "50 mg", "once daily"), ("simvastatin", "20 mg", "at night"),
    ]
