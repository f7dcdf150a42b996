"""Supplementary ICD-10-CM status codes read from values in the text.

BMI (Z68.-): an adult's body-mass index ("BMI 43", "IMC 31,5", "VKI 36") is coded only next to a
diagnosis it qualifies - obesity or overweight (E66.-), as the ICD-10-CM guidelines require
(I.B.14: BMI codes are secondary codes). A lab report or a document without such a diagnosis
gives none.
"""

from __future__ import annotations

import re

from app.extraction.text import parse_number

_BMI = re.compile(r"\b(?:BMI|IMC|VKI|body mass index)\b\s*(?:of|de|von|:|=)?\s*(\d{2}(?:[.,]\d{1,2})?)(?!\d)",
                  re.IGNORECASE)
BMI_QUALIFIES = ("E66.",)
ADULT_BMI_RANGE = (10.0, 90.0)


def bmi_code(text: str, codes: list[str]) -> tuple[str, int, int] | None:
    """(Z68 code, start, end of the BMI) for the first BMI in `text`, when `codes` hold a diagnosis
    it qualifies."""
    if not any(code.startswith(BMI_QUALIFIES) for code in codes):
        return None
    m = _BMI.search(text)
    if not m:
        return None
    value = parse_number(m.group(1))
    low, high = ADULT_BMI_RANGE
    return (_z68(value), m.start(), m.end()) if low <= value <= high else None


def _z68(bmi: float) -> str:
    """Z68.1 under 20; Z68.20-Z68.39 one per unit; Z68.41-Z68.45 in the ranges the list gives."""
    if bmi < 20:
        return "Z68.1"
    if bmi < 40:
        return f"Z68.{int(bmi)}"
    for upper, code in ((45, "Z68.41"), (50, "Z68.42"), (60, "Z68.43"), (70, "Z68.44")):
        if bmi < upper:
            return code
    return "Z68.45"
