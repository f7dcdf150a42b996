"""Conditions beyond the core (issue 14 point 3): malignancies by organ and side in six languages,
status and supplementary codes, sports injuries, dental, endocrine, terms from the tabular list."""

from __future__ import annotations

import pytest

from app.extraction.icd10 import is_billable
from tests.extraction.support import codes, extract, labs, med_names


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (
            "Diagnosis: invasive ductal carcinoma of the left breast, upper outer quadrant. 54-year-old woman.",
            "C50.412",
        ),
        ("Diagnóstico: carcinoma ductal infiltrante de mama derecha en una mujer de 60 años.", "C50.911"),
        ("Diagnose: Mammakarzinom links, Patientin 58 Jahre.", "C50.912"),
        ("Diagnostic : adénocarcinome pulmonaire du lobe supérieur droit.", "C34.11"),
        ("Tanı: Sol over kaynaklı yüksek dereceli seröz karsinom.", "C56.2"),
        ("Diagnóstico: adenocarcinoma de cólon sigmoide.", "C18.7"),
        ("Assessment: adenocarcinoma of the prostate, Gleason 3+4.", "C61"),
    ],
    ids=["en-breast-quadrant", "es-breast", "de-compound", "fr-lung-lobe", "tr-ovary", "pt-sigmoid", "en-prostate"],
)
def test_a_malignancy_is_coded_by_organ_side_and_subsite_in_every_language(text: str, code: str) -> None:
    assert code in codes(extract(text))


def test_a_malignancy_without_an_organ_or_in_the_family_gives_no_code() -> None:
    assert not {c for c in codes(extract("Family history: mother had ovarian cancer at 60.")) if c.startswith("C")}
    assert not {c for c in codes(extract("Cancer screening discussed.")) if c.startswith("C")}
    assert not {
        c for c in codes(extract("Pathology: ductal carcinoma in situ of the left breast.")) if c.startswith("C")
    }


def test_a_malignancy_that_has_not_recurred_is_a_personal_history_code() -> None:
    text = (
        "Antecedentes: adenocarcinoma de colon sigmoide intervenido en 2019.\n"
        "Juicio clínico: sin evidencia de recidiva del adenocarcinoma de colon."
    )
    found = codes(extract(text))
    assert "Z85.038" in found and not any(c.startswith("C18") for c in found)
    assert "C18.7" in codes(extract("Diagnóstico: adenocarcinoma de colon sigmoide."))


def test_receptor_status_is_coded_only_with_a_breast_malignancy() -> None:
    assert {"C50.912", "Z17.0"} <= codes(
        extract("Carcinoma of the left breast in a woman, ER positive, HER2 negative.")
    )
    assert "Z17.1" in codes(extract("Triple negative carcinoma of the right breast, female patient."))
    assert not {c for c in codes(extract("ER positive. Hypertension.")) if c.startswith("Z17")}


def test_long_term_therapy_only_where_the_text_says_so() -> None:
    said = "Adjuvant endocrine therapy with anastrozole 1 mg daily. Carcinoma of the left breast, woman."
    assert "Z79.811" in codes(extract(said))
    assert "Z79.01" in codes(extract("Long-term anticoagulation with apixaban 5 mg bd for atrial fibrillation."))
    assert not {c for c in codes(extract("Medications: apixaban 5 mg bd, metformin 500 mg bd.")) if c.startswith("Z79")}
    assert not {c for c in codes(extract("Long-term plan: stop apixaban.")) if c.startswith("Z79")}


@pytest.mark.parametrize(
    ("text", "wanted", "unwanted"),
    [
        ("Social: ex-smoker, quit 2015.", "Z87.891", "F17.210"),
        ("Ancien fumeur (40 PA, sevré depuis 2018).", "Z87.891", "F17.210"),
        ("Raucher, ca. 15 Zigaretten/Tag.", "F17.210", "Z87.891"),
    ],
)
def test_smoking_now_and_in_the_past(text: str, wanted: str, unwanted: str) -> None:
    found = codes(extract(text))
    assert wanted in found and unwanted not in found


@pytest.mark.parametrize("text", ["Non-smoker.", "Nega tabagismo.", "Nichtraucher.", "Sigara içmiyor."])
def test_a_non_smoker_is_not_coded(text: str) -> None:
    assert not codes(extract(text)) & {"F17.210", "Z87.891"}


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("MRI right knee: complete tear of the anterior cruciate ligament.", "S83.511A"),
        ("Impression: left knee, bucket-handle tear of the medial meniscus.", "S83.212A"),
        ("RM: ruptura completa do tendão supraespinal do ombro direito.", "M75.121"),
        ("Befund: chronische generalisierte Parodontitis.", "K05.329"),
        ("Zahnverlust regio 36 nach Extraktion wegen Parodontitis.", "K08.429"),
        ("Diagnosen: Morbus Basedow mit Hyperthyreose.", "E05.00"),
        ("Diagnóstico: esterilidad de origen tubárico.", "N97.1"),
        ("Comorbidades: esteatose hepática.", "K76.0"),
        ("Diagnoses: Adipositas Grad I (BMI 32,4 kg/m²).", "E66.811"),
    ],
)
def test_conditions_of_other_specialities(text: str, code: str) -> None:
    found = codes(extract(text))
    assert code in found, found
    assert all(is_billable(c) for c in found)


def test_unspecified_codes_give_way_to_the_specific_one_of_the_same_condition() -> None:
    text = "MRI right knee: complete tear of the anterior cruciate ligament. Plan: ACL tear, for reconstruction."
    assert {c for c in codes(extract(text)) if c.startswith("S83")} == {"S83.511A"}


def test_diabetes_complications_become_combination_codes() -> None:
    text = (
        "Tanılar: Tip 1 diabetes mellitus, diyabetik nefropati, kronik böbrek hastalığı evre 3a, diyabetik retinopati."
    )
    assert {"E10.22", "N18.31", "E10.319"} <= codes(extract(text))
    assert "E10.649" in codes(extract("Type 1 diabetes mellitus with recurrent hypoglycaemia."))


def test_conditions_named_only_in_the_tabular_list_are_coded() -> None:
    found = codes(extract("Assessment: Graves' disease. Also achalasia and bronchiectasis."))
    assert {"E05.00", "K22.0", "J47.9"} <= found


def test_a_reaction_on_an_allergy_line_is_not_a_diagnosis() -> None:
    assert not {c for c in codes(extract("Allergy to latex (urticaria).")) if c.startswith("L50")}
    assert {c for c in codes(extract("Assessment: chronic urticaria.")) if c.startswith("L50")}


def test_a_dated_past_procedure_is_history_not_a_recommendation() -> None:
    extraction = extract("Cardiopathie ischémique : angioplastie coronaire avec stent sur l'IVA en 2020.")
    assert extraction.recommended_procedure is None
    assert "Z95.5" in codes(extraction)


def test_a_class_name_gives_way_to_the_named_drug() -> None:
    text = "Diabète gestationnel équilibré sous insuline. Traitement : insuline détémir 8 UI le soir."
    assert med_names(extract(text)) == {"insulin detemir"}


@pytest.mark.parametrize(
    ("text", "name", "value", "unit"),
    [
        ("CA-125 864 U/mL", "ca-125", 864, "U/mL"),
        ("FSH 7.8 IU/L", "fsh", 7.8, "m[IU]/mL"),
        ("Oestradiol 165 pmol/L", "estradiol", 44.9, "pg/mL"),
        ("AMH 8.6 pmol/L", "amh", 1.2, "ng/mL"),
        ("Prolactin 412 mIU/L", "prolactin", 19.4, "ng/mL"),
        ("Testosterona total 14,5 nmol/L", "testosterone", 418, "ng/dL"),
        ("PSA livre 0,9 ng/mL", "free psa", 0.9, "ng/mL"),
    ],
)
def test_tumour_markers_and_hormones_in_ucum_converted_from_si(text: str, name: str, value: float, unit: str) -> None:
    found = labs(extract(text))
    assert found[name][1] == unit and found[name][0] == pytest.approx(value, rel=0.01)


def test_the_patients_sex_picks_the_breast_code_and_abbreviations_do_not_decide_it() -> None:
    assert "C50.912" in codes(extract("Echo: moderate MR. Carcinoma of the left breast in a 60-year-old woman."))
    assert "C50.922" in codes(extract("Mr Smith, carcinoma of the left breast."))
    assert "C50.912" in codes(extract("Man sieht ein Mammakarzinom links bei der Patientin."))


def test_a_pregnancy_gets_its_weeks_and_the_chapter_15_codes_of_its_other_conditions() -> None:
    text = (
        "Patiente de 31 ans, grossesse de 28 SA. Antécédents : césarienne en 2021 (utérus cicatriciel). "
        "Asthme intermittent.\nDiabète gestationnel.\nAnémie ferriprive : Hb 10,4 g/dL."
    )
    assert {"O24.419", "Z3A.28", "O34.219", "O99.513", "J45.20", "O99.013", "D50.9"} <= codes(extract(text))
    assert not codes(extract("Asthma. Previous caesarean section 2019. 28 weeks of physiotherapy.")) & {
        "Z3A.28",
        "O34.219",
        "O99.513",
    }


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("Sol over kaynaklı seröz karsinom; omental tutulum ve asit.", {"C56.2", "C78.6", "R18.0"}),
        ("Adenocarcinoma of the colon with liver metastases.", {"C18.9", "C78.7"}),
        ("Mammakarzinom rechts, Patientin, ossäre Metastasen.", {"C50.911", "C79.51"}),
        ("Cirrhosis with ascites.", {"R18.8"}),
    ],
)
def test_metastases_by_site_and_malignant_ascites(text: str, wanted: set[str]) -> None:
    assert wanted <= codes(extract(text))


def test_no_metastases_no_ascites_and_acids_are_not_coded() -> None:
    found = codes(extract("Staging CT: no metastases. Exercise test: 10 METs. Ürik asit 6,1 mg/dL, folik asit 5 mg."))
    assert not {c for c in found if c.startswith(("C7", "R18"))}


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Patiente suivie pour une épilepsie généralisée.", "G40.309"),
        ("Migraine sans aura, 2 crises par mois.", "G43.009"),
        ("41-year-old man with ileal Crohn's disease.", "K50.00"),
        ("Artrite reumatoide soropositiva há 10 anos.", "M05.9"),
        ("Diagnosen: Nierenstein rechts.", "N20.0"),
        ("Miocardiopatía isquémica.", "I25.5"),
        ("Decompensated chronic heart failure with reduced ejection fraction.", "I50.23"),
        ("Nicht-invasives Urothelkarzinom der Harnblase, TUR-B 2018, seither rezidivfrei.", "Z85.51"),
    ],
)
def test_more_common_conditions_in_the_supported_languages(text: str, code: str) -> None:
    assert code in codes(extract(text))


def test_a_supplement_is_not_a_lab_result() -> None:
    found = extract("Kullandığı ilaçlar: kalsiyum/D vitamini günde 1 kez.")
    assert "vitamin d" not in labs(found)
    assert med_names(found) == {"calcium carbonate/colecalciferol"}
