"""ConText: negated, resolved, hypothetical, family and prophylaxis mentions are not current
diagnoses, in every supported language; family-history and differential sections neither."""

from __future__ import annotations

import pytest

from tests.extraction.support import codes, extract

# (language, text, the codes that are current diagnoses)
NEGATED = [
    ("en", "No evidence of pulmonary embolism. Hypertension.", {"I10"}),
    ("es", "Sin evidencia de tromboembolismo pulmonar. Hipertensión arterial.", {"I10"}),
    ("de", "Keine Lungenembolie. Arterielle Hypertonie.", {"I10"}),
    ("fr", "Pas d'embolie pulmonaire. Hypertension artérielle.", {"I10"}),
    ("pt", "Sem embolia pulmonar. Hipertensão arterial.", {"I10"}),
    ("tr", "Pulmoner emboli saptanmadı. Hipertansiyon.", {"I10"}),
]
RESOLVED = [
    ("en", "Asthma as a child, resolved. Type 2 diabetes mellitus.", {"E11.9"}),
    ("es", "Asma en la infancia, resuelta. Diabetes mellitus tipo 2.", {"E11.9"}),
    ("de", "Asthma bronchiale in der Kindheit, ausgeheilt. Diabetes mellitus Typ 2.", {"E11.9"}),
    ("fr", "Asthme dans l'enfance, guéri. Diabète de type 2.", {"E11.9"}),
    ("pt", "Asma na infância, resolvida. Diabetes mellitus tipo 2.", {"E11.9"}),
    ("tr", "Çocuklukta astım, iyileşti. Tip 2 diabetes mellitus.", {"E11.9"}),
]
HYPOTHETICAL = [
    ("en", "Suspected deep vein thrombosis. Rule out pulmonary embolism. Atrial fibrillation.", {"I48.91"}),
    ("es", "Sospecha de trombosis venosa profunda. Descartar embolia pulmonar. Fibrilación auricular.", {"I48.91"}),
    ("de", "V.a. tiefe Venenthrombose. Lungenembolie nicht ausgeschlossen. Vorhofflimmern.", {"I48.91"}),
    ("fr", "Suspicion de thrombose veineuse profonde. Embolie pulmonaire à éliminer. Fibrillation auriculaire.",
     {"I48.91"}),
    ("pt", "Suspeita de trombose venosa profunda. Embolia pulmonar a descartar. Fibrilação atrial.", {"I48.91"}),
    ("tr", "Derin ven trombozu şüphesi. Pulmoner emboli ekarte edilmeli. Atriyal fibrilasyon.", {"I48.91"}),
]
FAMILY = [
    ("en", "Mother had breast cancer. Father: myocardial infarction. Hypothyroidism.", {"E03.9"}),
    ("es", "Madre con cáncer de mama. Padre: infarto de miocardio. Hipotiroidismo.", {"E03.9"}),
    ("de", "Mutter mit Mammakarzinom. Vater: Herzinfarkt. Hypothyreose.", {"E03.9"}),
    ("fr", "Mère : cancer du sein. Père : infarctus du myocarde. Hypothyroïdie.", {"E03.9"}),
    ("pt", "Mãe com câncer de mama. Pai: infarto do miocárdio. Hipotireoidismo.", {"E03.9"}),
    ("tr", "Annesinde meme kanseri. Babası: kalp krizi. Hipotiroidi.", {"E03.9"}),
]
PROPHYLAXIS = [
    ("en", "DVT prophylaxis with enoxaparin. Heart failure.", {"I50.9"}),
    ("es", "Profilaxis de TVP con enoxaparina. Insuficiencia cardiaca.", {"I50.9"}),
    ("de", "Prophylaxe einer tiefen Venenthrombose mit Enoxaparin. Herzinsuffizienz.", {"I50.9"}),
    ("fr", "Prévention de la thrombose veineuse profonde par énoxaparine. Insuffisance cardiaque.", {"I50.9"}),
    ("pt", "Profilaxia de trombose venosa profunda com enoxaparina. Insuficiência cardíaca.", {"I50.9"}),
    ("tr", "Derin ven trombozu profilaksisi başlandı. Kalp yetmezliği.", {"I50.9"}),
]


def _ids(cases: list[tuple[str, str, set[str]]]) -> list[str]:
    return [language for language, _, _ in cases]


@pytest.mark.parametrize(("language", "text", "want"), NEGATED, ids=_ids(NEGATED))
def test_negated_conditions_are_not_diagnoses(language: str, text: str, want: set[str]) -> None:
    assert codes(extract(text)) == want


@pytest.mark.parametrize(("language", "text", "want"), RESOLVED, ids=_ids(RESOLVED))
def test_resolved_conditions_are_not_diagnoses(language: str, text: str, want: set[str]) -> None:
    assert codes(extract(text)) == want


@pytest.mark.parametrize(("language", "text", "want"), HYPOTHETICAL, ids=_ids(HYPOTHETICAL))
def test_suspected_and_rule_out_conditions_are_not_diagnoses(language: str, text: str, want: set[str]) -> None:
    assert codes(extract(text)) == want


@pytest.mark.parametrize(("language", "text", "want"), FAMILY, ids=_ids(FAMILY))
def test_a_relatives_conditions_are_not_the_patients(language: str, text: str, want: set[str]) -> None:
    assert codes(extract(text)) == want


@pytest.mark.parametrize(("language", "text", "want"), PROPHYLAXIS, ids=_ids(PROPHYLAXIS))
def test_prophylaxis_is_not_the_disease(language: str, text: str, want: set[str]) -> None:
    assert codes(extract(text)) == want


def test_a_terminator_ends_the_scope_of_a_trigger() -> None:
    assert codes(extract("No chest pain but atrial fibrillation on ECG.")) == {"I48.91"}
    assert codes(extract("Keine Angina pectoris, aber Vorhofflimmern.")) == {"I48.91"}


def test_past_medical_history_heading_is_not_a_resolved_trigger() -> None:
    assert codes(extract("Past medical history: hypertension, hypothyroidism.")) == {"I10", "E03.9"}


def test_a_past_condition_with_a_history_code_gives_that_code() -> None:
    assert codes(extract("Myocardial infarction in 2015, resolved. Hypertension.")) == {"I25.2", "I10"}
    assert codes(extract("Pulmonary embolism years ago. No recurrence.")) == {"Z86.711"}


def test_stated_codes_follow_the_same_context() -> None:
    text = "Rule out: DVT (ICD-10 I82.409).\nV.a. Lungenembolie (ICD-10 I26.99).\nDiagnosis: hypertension (ICD-10 I10)."
    assert codes(extract(text)) == {"I10"}


def test_family_history_and_differential_sections_are_not_diagnoses() -> None:
    text = """FAMILY HISTORY
Type 2 diabetes, hypertension.
DIFFERENTIAL DIAGNOSIS
Pulmonary embolism (ICD-10 I26.99)
Heart failure
ASSESSMENT
Atrial fibrillation."""
    assert codes(extract(text)) == {"I48.91"}


@pytest.mark.parametrize("heading", ["Diagnóstico diferencial:", "Differentialdiagnose:", "Diagnostic différentiel :",
                                     "Ayırıcı tanı:"])
def test_differential_headings_in_other_languages(heading: str) -> None:
    assert codes(extract(f"{heading} heart failure\nAtrial fibrillation.")) == {"I48.91"}
