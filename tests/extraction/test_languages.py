"""Reports in Spanish, German, French and Turkish."""

from __future__ import annotations

from tests.extraction.support import codes, extract, labs, study_names


def test_spanish_report() -> None:
    text = """INFORME CLÍNICO
Diagnósticos: Diabetes mellitus tipo 2. Hipertensión arterial. Gonartrosis derecha.
Antecedentes familiares: madre con cáncer de mama.
Alergias: alergia a la penicilina (urticaria).
Tratamiento actual: Metformina 850 mg cada 12 horas; Enalapril 10 mg una vez al día.
Analítica: Hemoglobina 13,2 g/dL; Creatinina 0,9 mg/dL; HbA1c 7,1 %; Plaquetas 250 x10^9/L.
Ecocardiograma: FEVI 60%. Radiografía de rodilla derecha: pinzamiento articular.
No presenta fibrilación auricular.
Se recomienda prótesis total de rodilla."""
    extraction = extract(text)
    assert codes(extraction) == {"E11.9", "I10", "M17.11"}
    assert [(a.substance, a.reaction) for a in extraction.allergies] == [("penicillin", "urticaria")]
    assert {(m.name, m.dose, m.frequency) for m in extraction.medications} == {
        ("metformin", "850 mg", "twice daily"), ("enalapril", "10 mg", "once daily"),
    }
    assert labs(extraction) == {
        "hemoglobin": (13.2, "g/dL"), "creatinine": (0.9, "mg/dL"), "hba1c": (7.1, "%"), "platelets": (250, "10*9/L"),
    }
    assert study_names(extraction) == {"echocardiogram", "knee radiograph"}
    assert extraction.recommended_procedure == "total knee arthroplasty"


def test_german_report() -> None:
    text = """Arztbrief – Kardiologie
Diagnosen:
1. Koronare Herzkrankheit (3-Gefäß-Erkrankung)
2. Diabetes mellitus Typ 2
3. Arterielle Hypertonie
Allergien: Penicillinallergie (Exanthem)
Medikation: ASS 100 mg 1-0-0, Atorvastatin 40 mg zur Nacht, Metformin 1000 mg 1-0-1
Labor: Hämoglobin 13,8 g/dl, Kreatinin 1,0 mg/dl, HbA1c 7,4 %, LDL-Cholesterin 3,2 mmol/l, Kalium 4,3 mmol/l
Echokardiographie: EF 50 %. Koronarangiographie vom 03.02.2026.
Kein Hinweis auf Vorhofflimmern.
Empfehlung: aortokoronarer Bypass (ACVB)."""
    extraction = extract(text)
    assert codes(extraction) == {"I25.10", "E11.9", "I10"}
    assert [(a.substance, a.reaction) for a in extraction.allergies] == [("penicillin", "exanthem")]
    assert {(m.name, m.dose, m.frequency) for m in extraction.medications} == {
        ("aspirin", "100 mg", "in the morning"), ("atorvastatin", "40 mg", "at night"),
        ("metformin", "1000 mg", "twice daily"),
    }
    assert labs(extraction) == {
        "hemoglobin": (13.8, "g/dL"), "creatinine": (1.0, "mg/dL"), "hba1c": (7.4, "%"),
        "ldl cholesterol": (124, "mg/dL"), "potassium": (4.3, "mmol/L"),
    }
    assert study_names(extraction) == {"echocardiogram", "coronary angiography"}
    assert extraction.recommended_procedure == "coronary artery bypass grafting"


def test_french_report() -> None:
    text = """Compte rendu de consultation
Antécédents : diabète de type 2, hypertension artérielle, coxarthrose gauche.
Allergies : allergie à la pénicilline.
Traitement : metformine 1000 mg deux fois par jour, ramipril 5 mg une fois par jour.
Biologie : hémoglobine 12,5 g/dL, créatinine 80 µmol/L, HbA1c 6,9 %.
Échocardiographie normale. Radiographie du bassin : pincement articulaire.
Pas d'asthme. Pas de diabète insipide.
Une prothèse totale de hanche est recommandée."""
    extraction = extract(text)
    assert codes(extraction) == {"E11.9", "I10", "M16.12"}
    assert [a.substance for a in extraction.allergies] == ["penicillin"]
    assert {(m.name, m.dose, m.frequency) for m in extraction.medications} == {
        ("metformin", "1000 mg", "twice daily"), ("ramipril", "5 mg", "once daily"),
    }
    assert labs(extraction) == {"hemoglobin": (12.5, "g/dL"), "creatinine": (0.9, "mg/dL"), "hba1c": (6.9, "%")}
    assert study_names(extraction) == {"echocardiogram", "pelvic x-ray"}
    assert extraction.recommended_procedure == "total hip arthroplasty"


def test_turkish_report() -> None:
    text = """EPİKRİZ
Tanılar: Tip 2 diabetes mellitus, hipertansiyon, sağ diz osteoartriti.
Alerji: Penisilin alerjisi (döküntü).
Kullandığı ilaçlar: Metformin 1000 mg günde iki kez, Ramipril 5 mg günde bir kez.
Laboratuvar: Hemoglobin 13,1 g/dL, Kreatinin 0,9 mg/dL, HbA1c %7,2, Trombosit 240 x10^9/L.
Ekokardiyografi normal. Diz MR: ileri derecede kıkırdak kaybı.
Astım yok.
Total diz protezi önerilir."""
    extraction = extract(text)
    assert codes(extraction) == {"E11.9", "I10", "M17.11"}
    assert [(a.substance, a.reaction) for a in extraction.allergies] == [("penicillin", "dokuntu")]
    assert {(m.name, m.dose, m.frequency) for m in extraction.medications} == {
        ("metformin", "1000 mg", "twice daily"), ("ramipril", "5 mg", "once daily"),
    }
    assert labs(extraction) == {
        "hemoglobin": (13.1, "g/dL"), "creatinine": (0.9, "mg/dL"), "hba1c": (7.2, "%"), "platelets": (240, "10*9/L"),
    }
    assert study_names(extraction) == {"echocardiogram", "mri knee"}
    assert extraction.recommended_procedure == "total knee arthroplasty"


def test_allergy_phrasings_across_languages() -> None:
    for text in ["Alergia a la penicilina.", "Penicillinallergie", "Allergie gegen Penicillin",
                 "Allergie à la pénicilline", "Penisilin alerjisi var", "Allergic to penicillins"]:
        assert [a.substance for a in extract(text).allergies] == ["penicillin"], text


def test_lab_names_across_languages() -> None:
    for text in ["Hemoglobina 13,2 g/dL", "Hämoglobin 13,2 g/dl", "Hémoglobine 13,2 g/dL", "Hemoglobin 13,2 g/dL"]:
        assert labs(extract(text)) == {"hemoglobin": (13.2, "g/dL")}, text


def test_portuguese_report() -> None:
    text = """RELATÓRIO MÉDICO
Diagnósticos: doença arterial coronariana, hipertensão arterial sistêmica, fibrilação atrial paroxística.
Alergias: alergia a dipirona (urticária).
Medicação em uso: losartana 50 mg 12/12h, apixabana 5 mg 2x ao dia.
Exames: hemoglobina 13,0 g/dL, glicemia 1,18 g/L.
Radiografia da bacia sem alterações. Cateterismo: lesões em três vasos.
Conduta: indicada cirurgia de revascularização do miocárdio."""
    extraction = extract(text)
    assert codes(extraction) == {"I25.10", "I10", "I48.0"}
    assert [(a.substance, a.reaction) for a in extraction.allergies] == [("metamizole", "urticaria")]
    assert {(m.name, m.dose, m.frequency) for m in extraction.medications} == {
        ("losartan", "50 mg", "twice daily"), ("apixaban", "5 mg", "twice daily"),
    }
    assert labs(extraction) == {"hemoglobin": (13.0, "g/dL"), "glucose": (118, "mg/dL")}
    assert study_names(extraction) == {"pelvic x-ray", "coronary angiography"}
    assert extraction.recommended_procedure == "coronary artery bypass grafting"


def test_a_procedure_proposed_after_a_discussion_is_recommended() -> None:
    extraction = extract("Conclusion : une TAVI est proposée après discussion en Heart Team.")
    assert extraction.recommended_procedure == "transcatheter aortic valve implantation"
