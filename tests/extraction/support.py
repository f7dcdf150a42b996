"""Helpers for the extraction tests: fixture text and a one-call offline extraction."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pymupdf

from app.extraction.offline import extract_text
from app.extraction.schemas import Extraction

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "documents"


def expected() -> dict[str, Any]:
    return json.loads((FIXTURES / "expected.json").read_text())


def pdf_pages(name: str) -> list[str]:
    """The text layer of each page of a fixture PDF."""
    with pymupdf.open(FIXTURES / name) as doc:
        return [page.get_text() for page in doc]


def extract(text: str) -> Extraction:
    return extract_text([text])


def codes(extraction: Extraction) -> set[str]:
    return {c.code for c in extraction.conditions}


def labs(extraction: Extraction) -> dict[str, tuple[float, str]]:
    return {lab.name: (lab.value, lab.unit) for lab in extraction.labs}


def med_names(extraction: Extraction) -> set[str]:
    return {m.name for m in extraction.medications}


def study_names(extraction: Extraction) -> set[str]:
    return {s.name for s in extraction.studies}
