"""The vocabulary data file is internally consistent."""

from __future__ import annotations

import json
import re

from app.ehr.fhir import UCUM_UNITS
from app.extraction.icd10 import is_billable
from app.extraction.vocabulary import VOCABULARY_PATH, default_vocabulary

ICD10_CM = re.compile(r"[A-TV-Z][0-9][0-9AB](?:\.[0-9A-TV-Z]{1,4})?")
LOINC = re.compile(r"\d{1,7}-\d")


def data() -> dict:
    return json.loads(VOCABULARY_PATH.read_text(encoding="utf-8"))


def test_every_lab_unit_and_conversion_is_known_and_canonical_units_are_ucum() -> None:
    unit_keys = {unit["key"] for unit in data()["units"]}
    for spec in default_vocabulary().labs.values():
        assert spec.unit == "" or spec.unit in UCUM_UNITS, spec.name
        assert spec.unit == "" or spec.unit in unit_keys, spec.name
        assert set(spec.convert) <= unit_keys, spec.name
        assert spec.low < spec.high, spec.name
        assert spec.loinc == "" or LOINC.fullmatch(spec.loinc), spec.name


def test_every_condition_code_is_icd10_cm_with_a_display() -> None:
    vocabulary = default_vocabulary()
    for site_condition in vocabulary.site_conditions.values():
        for sides in site_condition.codes.values():
            for key, code in sides.items():  # a display of our own, else the tabular list's description
                assert key == "tabular" or code in vocabulary.displays or is_billable(code), code
    for code in vocabulary.displays:
        assert ICD10_CM.fullmatch(code), code


def test_section_kinds_and_imaging_templates_are_usable() -> None:
    vocabulary = default_vocabulary()
    kinds = {kind for kind, _ in vocabulary.sections}
    assert kinds == {
        "family",
        "differential",
        "discontinued",
        "other",
        "allergies",
        "medications",
        "pmh",
        "procedures",
        "diagnoses",
        "assessment",
        "plan",
        "labs",
    }
    for modality in vocabulary.modalities.values():
        assert modality.template.format(site="knee")
    for overrides in vocabulary.overrides.values():
        assert set(overrides) <= set(vocabulary.site_labels)


def test_canonical_names_are_lower_case() -> None:
    raw = data()
    for section in ("medications", "allergens", "labs", "studies", "procedures", "frequencies"):
        for entry in raw[section]:
            assert entry["name"] == entry["name"].lower().strip(), entry["name"]
