"""Supplementary ICD-10-CM status codes read from values and phrases in the text.

BMI (Z68.-): an adult's body-mass index ("BMI 43", "IMC 31,5", "VKI 36") is coded only next to a
diagnosis it qualifies - obesity or overweight (E66.-), as the ICD-10-CM guidelines require
(I.B.14: BMI codes are secondary codes). A lab report or a document without such a diagnosis
gives none.

Receptor status (Z17.-) and the like (`vocabulary.json` `icd10_status_patterns`): a pattern on the
folded text, coded only when a diagnosis it qualifies is coded (Z17.0 "ER positive" with a breast
malignancy C50.-); the first matching pattern of each code counts.

Pregnancy (`icd10_pregnancy`), when a pregnancy code (chapter O) is coded: the weeks of gestation
("28 SA", "28 weeks", "28. SSW", "28/40") give Z3A.-, and each condition of another chapter that
complicates the pregnancy gets its O99 companion by trimester (iron deficiency anaemia at 28 weeks
-> O99.013 next to D50.9; asthma -> O99.51-), as guideline I.C.15.a asks (chapter 15 codes first).

Long-term drug therapy (Z79.-, `icd10_long_term_therapy`): a current medication whose class has a
Z79 code, when its own sentence says the therapy is long-term or maintenance ("long-term
anticoagulation with apixaban", "adjuvant endocrine therapy with anastrozole", "Dauertherapie",
"au long cours"). A drug merely listed gives none: the list's guideline codes Z79 for therapy the
record says is ongoing, and a list cannot say so.
"""

from __future__ import annotations

import re

from app.extraction.document import Document
from app.extraction.icd10 import is_billable
from app.extraction.text import parse_number
from app.extraction.vocabulary import Vocabulary

_BMI = re.compile(
    r"\b(?:BMI|IMC|VKI|body mass index)\b\s*(?:of|de|von|:|=)?\s*(\d{2}(?:[.,]\d{1,2})?)(?!\d)", re.IGNORECASE
)
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


def pattern_codes(doc: Document, vocabulary: Vocabulary, codes: list[str]) -> list[tuple[str, int, int]]:
    """(code, start, end) of each status pattern found whose qualifying diagnosis is in `codes`."""
    lowered = doc.text.lower()
    found = []
    for status in vocabulary.status_patterns:
        if status.code in codes or not any(code.startswith(status.with_codes) for code in codes):
            continue
        matches = [m for pattern in status.patterns if (m := pattern.search(lowered))]
        if matches:
            first = min(matches, key=lambda m: m.start())
            found.append((status.code, first.start(), first.end()))
    return found


def long_term_codes(doc: Document, vocabulary: Vocabulary, drugs: set[str]) -> list[tuple[str, int, int]]:
    """(Z79 code, start, end of the drug's mention) for current drugs whose sentence says long-term."""
    found: dict[str, tuple[str, int, int]] = {}
    for hit in doc.found("medication"):
        code = vocabulary.long_term_codes.get(hit.key or "")
        if not code or hit.key not in drugs or code in found:
            continue
        s0, s1 = doc.sentence(hit.start)
        if doc.cues("long_term", s0, s1):
            found[code] = (code, hit.start, hit.end)
    return list(found.values())


def pregnancy_codes(doc: Document, vocabulary: Vocabulary, codes: list[str]) -> list[tuple[str, str | None, int, int]]:
    """(code, the condition it accompanies or None, start, end of the weeks) for a pregnancy:
    Z3A weeks of gestation and the O99 companions of conditions from other chapters."""
    if not any(code.startswith("O") for code in codes):
        return []
    weeks, start, end = _weeks(doc, vocabulary)
    found: list[tuple[str, str | None, int, int]] = []
    if weeks is not None:
        z3a = "Z3A.01" if weeks < 8 else "Z3A.49" if weeks > 42 else f"Z3A.{weeks:02d}"
        if is_billable(z3a):
            found.append((z3a, None, start, end))
    first, second = vocabulary.pregnancy["trimester_weeks"]
    trimester = "9" if weeks is None else "1" if weeks < first else "2" if weeks < second else "3"
    for code in codes:
        rule = next((r for r in vocabulary.pregnancy["complicating"] if code.startswith(tuple(r["prefixes"]))), None)
        if rule and is_billable(rule["code"] + trimester):
            found.append((rule["code"] + trimester, code, start, end))
    return found


def _weeks(doc: Document, vocabulary: Vocabulary) -> tuple[int | None, int, int]:
    for pattern in vocabulary.pregnancy["weeks"]:
        m = pattern.search(doc.text)
        if m and 1 <= int(m.group(1)) <= 45:
            return int(m.group(1)), m.start(), m.end()
    return None, 0, 0
