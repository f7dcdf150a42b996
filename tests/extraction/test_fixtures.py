"""The shared fixture documents extract what expected.json says they contain."""

from __future__ import annotations

import pytest

from app.extraction.offline import OfflineExtractor
from app.extraction.schemas import Extraction
from tests.extraction.support import (
    codes,
    expected,
    extract,
    labs,
    med_names,
    pdf_pages,
    study_names,
)

ANALYZED = sorted(name for name, want in expected().items() if isinstance(want, dict) and want.get("expect") == "analyzed")

# The scanned note as Tesseract 5 reads it at 200 dpi (the PDF has no text layer): OCR's spacing kept.
SCANNED_NOTE_OCR = (
    "OUTPATIENT CLINIC NOTE  (scanned)\n\n\nPatient:  Ola Demo  (synthetic)   DOB 1980-01-05\n\n"
    "Date:  2026-05-10\n\n\nComplaint:  low back pain radiating to left  leg,   8 months.\n"
    "Exam: positive straight leg raise left  at  40 degrees.\n"
    "MRI lumbar spine:  L4-L5 disc herniation compressing left  L5 root.\n"
    "Assessment:  lumbar radiculopathy  (ICD-10 M54.16).\n"
    "Plan:  consider microdiscectomy L4-L5.\n"
    "Medication:  pregabalin  75 mg twice daily."
)


def assert_contains(extraction: Extraction, want: dict) -> None:
    assert set(want["conditions"]) <= codes(extraction)
    assert set(want["medications"]) <= med_names(extraction)
    assert set(want["allergies"]) <= {a.substance for a in extraction.allergies}
    found = labs(extraction)
    for name, value, unit in want.get("labs", []):
        assert name in found, f"lab {name} missing from {found}"
        assert found[name] == (pytest.approx(value), unit)
    assert set(want["studies"]) <= study_names(extraction)
    assert extraction.recommended_procedure == want["recommended_procedure"]


@pytest.mark.parametrize("name", ANALYZED)
async def test_fixture_pdf_text_extracts_everything_expected(name: str) -> None:
    extraction = await OfflineExtractor().extract(pdf_pages(name))
    assert_contains(extraction, expected()[name])


def test_lab_report_gives_no_conditions_from_values_or_comments() -> None:
    extraction = extract("\n".join(pdf_pages("lab_report_panel.pdf")))
    assert extraction.conditions == []
    assert extraction.medications == [] and extraction.allergies == []
    assert extraction.recommended_procedure is None


def test_discharge_summary_reads_doses_frequencies_and_no_allergies() -> None:
    extraction = extract("\n".join(pdf_pages("discharge_summary_cardiology.pdf")))
    meds = {m.name: (m.dose, m.frequency) for m in extraction.medications}
    assert meds["aspirin"] == ("75 mg", "once daily")
    assert meds["atorvastatin"] == ("80 mg", "at night")
    assert meds["metformin"] == ("1000 mg", "twice daily")
    assert extraction.allergies == []  # "No known drug allergies."


def test_referral_allergy_keeps_its_reaction_and_is_not_a_medication() -> None:
    extraction = extract("\n".join(pdf_pages("referral_letter_hip.pdf")))
    assert [(a.substance, a.reaction) for a in extraction.allergies] == [("penicillin", "rash and facial swelling")]
    assert "penicillin" not in med_names(extraction)


def test_scanned_note_ocr_text_extracts_what_the_scan_contains() -> None:
    assert_contains(extract(SCANNED_NOTE_OCR), expected()["scanned_note_image_only.pdf"])


def test_scanned_note_survives_ocr_noise() -> None:
    noisy = (SCANNED_NOTE_OCR.replace("ICD-10", "lCD—10").replace("L4-L5", "L4–L5")
             .replace("lumbar radiculopathy", "lumbar  radiculopathy").replace("75 mg", "75mg"))
    extraction = extract(noisy)
    assert "M54.16" in codes(extraction)
    assert [(m.name, m.dose) for m in extraction.medications] == [("pregabalin", "75 mg")]
    assert extraction.recommended_procedure == "microdiscectomy"


def test_extraction_is_deterministic() -> None:
    pages = pdf_pages("discharge_summary_cardiology.pdf")
    assert extract("\n".join(pages)) == extract("\n".join(pages))
