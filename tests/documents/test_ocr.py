"""Page text: the text layer where there is one, OCR (Tesseract or RapidOCR) where not, and never a
silent empty."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.config import Settings
from app.documents.ocr import extract_pages, find_tessdata
from app.documents.pdf import CorruptPdf, PasswordProtectedPdf, TruncatedPdf
from app.extraction.offline import extract_text
from tests.documents.conftest import (
    ENCRYPTED,
    SCANNED,
    TEXT_FIXTURES,
    build_pdf,
    expected,
    fixture_bytes,
    scanned_image,
)

FIXTURE_PHRASES = {
    "discharge_summary_cardiology.pdf": ["DISCHARGE SUMMARY", "atorvastatin", "coronary artery bypass"],
    "imaging_mri_knee.pdf": ["MAGNETIC RESONANCE IMAGING", "arthroplasty"],
    "lab_report_panel.pdf": ["Hemoglobin", "LIPID PANEL"],
    "referral_letter_hip.pdf": ["levothyroxine", "penicillin"],
}


def normalised(text: str) -> str:
    return re.sub(r"\s+", " ", text).lower()


def no_ocr(tmp_path: Path) -> dict[str, object]:
    """Arguments that make OCR unavailable: an empty tessdata directory and no fallback search."""
    empty = tmp_path / "tessdata"
    empty.mkdir(exist_ok=True)
    return {"tessdata_prefix": str(empty), "search_standard_paths": False}


@pytest.mark.parametrize(("name", "pages"), TEXT_FIXTURES.items())
def test_text_fixtures_give_their_text_layer_without_ocr(tmp_path: Path, name: str, pages: int) -> None:
    result = extract_pages(fixture_bytes(name), language="eng", **no_ocr(tmp_path))

    assert result.page_count == pages
    assert [p.number for p in result.pages] == list(range(1, pages + 1))
    assert not result.needs_ocr and result.reason is None
    assert all(p.text.strip() and not p.ocr and not p.needs_ocr for p in result.pages)
    for phrase in FIXTURE_PHRASES[name]:
        assert phrase.lower() in normalised(result.text)


def test_each_page_keeps_its_own_text() -> None:
    result = extract_pages(fixture_bytes("lab_report_panel.pdf"), tessdata_prefix=None)

    assert "COMPLETE BLOOD COUNT" in result.pages[0].text
    assert "LIPID PANEL" in result.pages[1].text
    assert "LIPID PANEL" not in result.pages[0].text


def test_the_scanned_note_is_read_by_ocr_when_tesseract_is_installed(tessdata: str) -> None:
    result = extract_pages(fixture_bytes(SCANNED), tessdata_prefix=tessdata, language="eng")

    assert not result.needs_ocr and result.reason is None
    assert result.ocr_page_numbers == [1]
    text = normalised(result.text)
    facts = expected()[SCANNED]
    assert "radiculopathy" in text
    assert facts["conditions"][0].lower() in text  # m54.16
    assert facts["medications"][0] in text  # pregabalin
    assert re.search(r"mri\W+lumbar\W+spine", text)
    assert facts["recommended_procedure"] in text  # microdiscectomy


def test_the_standard_locations_are_searched_when_no_prefix_is_given(tessdata: str) -> None:
    result = extract_pages(fixture_bytes(SCANNED), tessdata_prefix=None)

    assert result.pages[0].ocr and "pregabalin" in result.pages[0].text


def test_a_prefix_naming_the_parent_of_tessdata_also_works(tessdata: str) -> None:
    assert find_tessdata(str(Path(tessdata).parent), "eng", search_standard_paths=False) == Path(tessdata)


def test_the_scanned_note_needs_ocr_with_a_reason_when_tesseract_is_missing(tmp_path: Path) -> None:
    result = extract_pages(fixture_bytes(SCANNED), language="eng", **no_ocr(tmp_path))

    assert result.needs_ocr
    assert result.reason == "1 of 1 page has no text layer and OCR (Tesseract language data for 'eng') is not installed"
    assert [(p.number, p.text, p.ocr, p.needs_ocr) for p in result.pages] == [(1, "", False, True)]


def test_a_missing_language_is_reported_like_missing_tesseract(tessdata: str) -> None:
    result = extract_pages(fixture_bytes(SCANNED), tessdata_prefix=tessdata, language="xyz", search_standard_paths=False)

    assert result.needs_ocr
    assert "language data for 'xyz'" in (result.reason or "")


def test_a_mixed_document_without_ocr_keeps_its_text_and_counts_the_scanned_pages(tmp_path: Path) -> None:
    data = build_pdf("Referral letter: total hip arthroplasty is recommended for this patient.", scanned_image())

    result = extract_pages(data, language="eng", **no_ocr(tmp_path))

    assert result.needs_ocr
    assert result.reason is not None and result.reason.startswith("1 of 2 pages has no text layer")
    assert "hip arthroplasty" in result.pages[0].text and not result.pages[0].needs_ocr
    assert result.pages[1].needs_ocr


def test_a_mixed_document_with_ocr_reads_every_page(tessdata: str) -> None:
    data = build_pdf("Referral letter: total hip arthroplasty is recommended for this patient.", scanned_image())

    result = extract_pages(data, tessdata_prefix=tessdata)

    assert not result.needs_ocr
    assert [p.ocr for p in result.pages] == [False, True]
    assert "pregabalin" in result.pages[1].text


def test_a_scan_with_a_small_digital_header_is_still_ocrd(tessdata: str) -> None:
    data = build_pdf(scanned_image(), header="Scanned by Clinic Copier 3000 on 2026-05-10")

    result = extract_pages(data, tessdata_prefix=tessdata)

    assert result.pages[0].ocr
    assert "microdiscectomy" in result.pages[0].text


def test_broken_language_data_is_an_ocr_failure_with_a_reason(tmp_path: Path) -> None:
    broken = tmp_path / "tessdata"
    broken.mkdir()
    (broken / "eng.traineddata").write_bytes(b"not a language model" * 100)

    result = extract_pages(fixture_bytes(SCANNED), tessdata_prefix=str(broken), search_standard_paths=False)

    assert result.needs_ocr
    assert result.reason is not None and result.reason.startswith("OCR failed on page 1")
    assert result.pages[0].needs_ocr


def test_a_blank_document_is_never_a_silent_empty_result(tmp_path: Path) -> None:
    result = extract_pages(build_pdf("", ""), **no_ocr(tmp_path))

    assert result.needs_ocr
    assert result.reason == "the document has no text on any page"
    assert [p.needs_ocr for p in result.pages] == [False, False]


def test_a_page_whose_content_cannot_be_decoded_is_refused_as_damaged() -> None:
    data = fixture_bytes("lab_report_panel.pdf")
    start = data.index(b"stream\n", data.index(b"/Filter/FlateDecode")) + len(b"stream\n") + 20
    damaged = data[:start] + b"\x00" * 200 + data[start + 200 :]

    with pytest.raises(CorruptPdf, match="Page 1 of this PDF is damaged"):
        extract_pages(damaged, tessdata_prefix=None)


@pytest.mark.parametrize(
    ("data", "error"),
    [(fixture_bytes(ENCRYPTED), PasswordProtectedPdf), (fixture_bytes(SCANNED)[:30000], TruncatedPdf)],
)
def test_unusable_pdfs_raise_the_intake_errors(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        extract_pages(data, tessdata_prefix=None)


def test_find_tessdata_needs_every_requested_language(tmp_path: Path) -> None:
    (tmp_path / "eng.traineddata").write_bytes(b"x")

    assert find_tessdata(str(tmp_path), "eng", search_standard_paths=False) == tmp_path
    assert find_tessdata(str(tmp_path), "eng+deu", search_standard_paths=False) is None
    assert find_tessdata(str(tmp_path / "nowhere"), "eng", search_standard_paths=False) is None
    assert find_tessdata(None, "eng", search_standard_paths=False) is None


def without_tesseract(tmp_path: Path, engines: str) -> dict[str, object]:
    """A machine without Tesseract, by configuration: no language data, and the OCR_ENGINES setting."""
    return {**no_ocr(tmp_path), "engines": Settings(ocr_engines=engines).ocr_engine_names}


def test_the_scanned_note_is_analysed_without_tesseract_by_rapidocr(tmp_path: Path) -> None:
    result = extract_pages(fixture_bytes(SCANNED), language="eng", **without_tesseract(tmp_path, "tesseract,rapidocr"))

    assert not result.needs_ocr and result.reason is None
    assert result.ocr_page_numbers == [1]
    assert "low back pain radiating to left leg" in normalised(result.text)  # words apart again
    extraction = extract_text([page.text for page in result.pages])
    facts = expected()[SCANNED]
    assert set(facts["conditions"]) <= {c.code for c in extraction.conditions}
    assert [m.name for m in extraction.medications] == facts["medications"]
    assert set(facts["studies"]) <= {s.name for s in extraction.studies}
    assert extraction.recommended_procedure == facts["recommended_procedure"]


def test_no_engine_configured_leaves_a_scan_needing_ocr_with_a_reason(tmp_path: Path) -> None:
    result = extract_pages(fixture_bytes(SCANNED), **{**no_ocr(tmp_path), "engines": ()})

    assert result.needs_ocr and result.pages[0].needs_ocr
    assert result.reason == "1 of 1 page has no text layer and OCR is disabled"


def test_an_unknown_ocr_engine_is_refused_by_the_settings() -> None:
    with pytest.raises(ValueError, match="unknown engine 'easyocr'"):
        Settings(ocr_engines="tesseract,easyocr")
    assert Settings(ocr_engines=" RapidOCR , tesseract").ocr_engine_names == ("rapidocr", "tesseract")


def test_ocr_disabled_leaves_no_active_engine(tmp_path: Path) -> None:
    settings = Settings(ocr_enabled=False, ocr_engines="tesseract,rapidocr")
    result = extract_pages(fixture_bytes(SCANNED), **{**no_ocr(tmp_path), "engines": settings.active_ocr_engines})

    assert settings.active_ocr_engines == () and result.needs_ocr
    assert Settings(ocr_engines="rapidocr").active_ocr_engines == ("rapidocr",)
