"""Map any agent's extraction onto the vocabulary's canonical names, codes and units.

The LLM agent's answers go through here so both agents speak the same names: brand -> generic
("Lipitor" -> "atorvastatin"), lab synonyms -> canonical lab in its canonical unit ("HbA1c 57
mmol/mol" -> hba1c 7.4 %), "MRI of the right knee" -> "mri knee", "TKR" -> "total knee arthroplasty",
"I2510" -> "I25.10". A name the vocabulary does not know is kept (lower-cased), never dropped: the
FHIR stage decides whether it is valid and records an issue if not. Condition codes are the
exception: each is made billable in the ICD-10-CM tabular list (from its code, else from its
display through the vocabulary) or dropped, and the set follows `icd10.coherent_codes`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from app.extraction.conditions import ICD10_CM
from app.extraction.document import Document
from app.extraction.icd10 import billable_code, coherent_codes, description
from app.extraction.medications import dose as parse_dose
from app.extraction.schemas import (
    Allergy,
    Condition,
    Extraction,
    Lab,
    Medication,
    Study,
)
from app.extraction.studies import extract_studies
from app.extraction.text import fold
from app.extraction.vocabulary import Vocabulary, default_vocabulary

T = TypeVar("T")
_UNDOTTED = re.compile(r"([A-TV-Z][0-9][0-9AB])([0-9A-TV-Z]{1,4})")


def canonicalise(extraction: Extraction, vocabulary: Vocabulary | None = None) -> Extraction:
    """The same extraction with canonical names, codes and units, duplicates removed."""
    v = vocabulary or default_vocabulary()
    return Extraction(
        conditions=_conditions(extraction.conditions, v),
        medications=_unique([_medication(m, v) for m in extraction.medications], lambda m: m.name),
        allergies=_unique([_allergy(a, v) for a in extraction.allergies], lambda a: a.substance),
        labs=_unique([_lab(lab, v) for lab in extraction.labs], lambda lab: lab.name),
        studies=_unique([Study(name=_study(s.name, v)) for s in extraction.studies], lambda s: s.name),
        recommended_procedure=_procedure(extraction.recommended_procedure, v),
    )


def normalise_code(code: str) -> str:
    """ICD-10-CM code in its written form: upper case, dot after the category ("i2510" -> "I25.10")."""
    compact = "".join(code.split()).upper().rstrip(".")
    undotted = _UNDOTTED.fullmatch(compact)
    return f"{undotted.group(1)}.{undotted.group(2)}" if undotted else compact


def _conditions(conditions: list[Condition], v: Vocabulary) -> list[Condition]:
    found = _unique([c for c in (_condition(c, v) for c in conditions) if c], lambda c: c.code)
    by_code = {c.code: c for c in found}
    codes = coherent_codes(list(by_code), v.combinations, v.integral_symptoms)
    return [
        by_code.get(code) or Condition(code=code, display=v.displays.get(code) or description(code)) for code in codes
    ]


def _condition(condition: Condition, v: Vocabulary) -> Condition | None:
    """The condition with a billable code (its own, else its display's), or None."""
    code = normalise_code(condition.code)
    billable = billable_code(code, condition.display) if ICD10_CM.fullmatch(code) else None
    billable = billable or v.index.lookup("condition", condition.display)
    if billable is None:
        return None
    display = condition.display.strip() if billable == code else ""
    return Condition(code=billable, display=v.displays.get(billable) or display or description(billable))


def _medication(med: Medication, v: Vocabulary) -> Medication:
    frequency = med.frequency and (v.index.lookup("frequency", med.frequency) or _plain(med.frequency))
    return Medication(
        name=v.index.lookup("medication", med.name) or _plain(med.name),
        dose=med.dose and (parse_dose(fold(med.dose)) or med.dose.strip()),
        frequency=frequency or None,
    )


def _allergy(allergy: Allergy, v: Vocabulary) -> Allergy:
    return Allergy(
        substance=v.index.lookup("allergen", allergy.substance) or _plain(allergy.substance),
        reaction=_plain(allergy.reaction) if allergy.reaction else None,
    )


def _lab(lab: Lab, v: Vocabulary) -> Lab:
    spec = v.labs.get(v.index.lookup("lab", lab.name) or "")
    if spec is None:
        return Lab(name=_plain(lab.name), value=lab.value, unit=lab.unit.strip())
    unit_text = fold(lab.unit).strip()
    if not unit_text:
        candidates = [spec.unit, *spec.convert]
    else:
        match = v.units.match(unit_text, 0)
        if match is None or match.end != len(unit_text):
            return Lab(name=spec.name, value=lab.value, unit=lab.unit.strip())
        candidates = [u for u in match.keys if spec.accepts(u)]
    values = [(spec.to_canonical(lab.value, u), u) for u in candidates]
    plausible = [value for value, _ in values if spec.low <= value <= spec.high]
    if plausible or values:
        return Lab(name=spec.name, value=(plausible or [values[0][0]])[0], unit=spec.unit)
    return Lab(name=spec.name, value=lab.value, unit=lab.unit.strip())


def _study(name: str, v: Vocabulary) -> str:
    studies = extract_studies(Document.build([name], v), v)
    return studies[0].name if studies else _plain(name)


def _procedure(name: str | None, v: Vocabulary) -> str | None:
    if not name or not name.strip():
        return None
    return v.index.lookup("procedure", name) or _plain(name)


def _plain(text: str) -> str:
    return " ".join(text.lower().split())


def _unique(items: list[T], key: Callable[[T], str]) -> list[T]:
    seen: dict[str, T] = {}
    for item in items:
        seen.setdefault(key(item), item)
    return list(seen.values())
