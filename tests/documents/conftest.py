"""Document fixtures (synthetic PDFs, copied from shared/fixtures/documents) and PDF builders."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pymupdf
import pytest

from app.documents.ocr import find_tessdata

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "documents"
TEXT_FIXTURES = {  # file -> page count
    "discharge_summary_cardiology.pdf": 1,
    "imaging_mri_knee.pdf": 1,
    "lab_report_panel.pdf": 2,
    "referral_letter_hip.pdf": 1,
}
SCANNED = "scanned_note_image_only.pdf"
ENCRYPTED = "encrypted_report.pdf"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def expected() -> dict[str, Any]:
    return json.loads((FIXTURES / "expected.json").read_text())


@pytest.fixture(scope="session")
def tessdata() -> str:
    """Tesseract's English data; skips without it, unless CURAWAY_REQUIRE_OCR is set (CI)."""
    found = find_tessdata(None, "eng")
    if found is None:
        message = "Tesseract language data not installed (apt-get install tesseract-ocr tesseract-ocr-eng)"
        if os.environ.get("CURAWAY_REQUIRE_OCR"):
            pytest.fail(message)
        pytest.skip(message)
    return str(found)


def scanned_image() -> bytes:
    """The JPEG scan inside the image-only fixture."""
    with pymupdf.open(stream=fixture_bytes(SCANNED), filetype="pdf") as doc:
        xref = doc[0].get_images()[0][0]
        return doc.extract_image(xref)["image"]


def build_pdf(*pages: str | bytes, header: str | None = None) -> bytes:
    """A PDF with one page per argument: a str becomes a text page, bytes a full-page image."""
    with pymupdf.open() as doc:
        for content in pages:
            page = doc.new_page()
            if isinstance(content, bytes):
                page.insert_image(page.rect, stream=content)
                if header:
                    page.insert_text((36, 20), header, fontsize=8)
            elif content:
                page.insert_textbox(pymupdf.Rect(72, 72, 540, 770), content, fontsize=11)
        return doc.tobytes()
