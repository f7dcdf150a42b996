"""Provenance for facts an agent returned without it (the LLM agent): found again in the pages.

`locate` gives each fact of a canonical extraction the first mention in the pages that the
vocabulary maps to the same canonical name or code: a stated code ("I25.10") or a condition term
for conditions, a drug or allergen name, a lab name, a study or imaging term, a procedure term.
The rule is `rule` (e.g. "llm:gpt-4o-mini"). A fact the text does not mention keeps no provenance,
so a reviewer sees at once what the model asserted without support in the document. Facts that
already carry provenance are left as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TypeVar

from app.extraction.document import Document
from app.extraction.schemas import Extraction, Provenance, _Item
from app.extraction.vocabulary import Hit, Vocabulary

_UNDOTTED_CODE = re.compile(r"\.")
T = TypeVar("T", bound=_Item)


def _keep(item: T, provenance: Provenance | None) -> T:
    """The item with `provenance`, unless it already has its own."""
    return item if item.provenance else item.model_copy(update={"provenance": provenance})


def locate(extraction: Extraction, pages: list[str], vocabulary: Vocabulary, rule: str) -> Extraction:
    """The extraction with each fact's provenance taken from its first mention in `pages`."""
    doc = Document.build(pages, vocabulary)

    def where(hits: Iterable[Hit], key: str) -> Provenance | None:
        hit = next((h for h in hits if h.key == key), None)
        return doc.provenance(hit.start, hit.end, rule) if hit else None

    conditions = [_keep(c, _code_mention(doc, c.code, rule) or where(doc.found("condition"), c.code))
                  for c in extraction.conditions]
    drugs = doc.found("medication")
    allergens = doc.found("allergen") + drugs
    procedure = extraction.procedure_provenance or (
        where(doc.found("procedure"), extraction.recommended_procedure) if extraction.recommended_procedure else None)
    return extraction.model_copy(update={
        "conditions": conditions,
        "medications": [_keep(m, where(drugs, m.name)) for m in extraction.medications],
        "allergies": [_keep(a, where(allergens, a.substance)) for a in extraction.allergies],
        "labs": [_keep(lab, where(doc.found("lab"), lab.name)) for lab in extraction.labs],
        "studies": [_keep(s, _study_mention(doc, s.name, rule)) for s in extraction.studies],
        "procedure_provenance": procedure,
    })


def _code_mention(doc: Document, code: str, rule: str) -> Provenance | None:
    """The first place the code itself is written, dotted or not ("I25.10", "I2510")."""
    for written in (code, _UNDOTTED_CODE.sub("", code)):
        m = re.search(rf"(?<![A-Za-z0-9]){re.escape(written)}(?![0-9A-Za-z])", doc.text)
        if m:
            return doc.provenance(m.start(), m.end(), rule)
    return None


def _study_mention(doc: Document, name: str, rule: str) -> Provenance | None:
    """A study term with this name, else the first imaging term whose modality starts the name."""
    hit = next((h for h in doc.found("study") if h.key == name), None)
    hit = hit or next((h for h in doc.found("modality") if h.key and name.startswith(h.key)), None)
    hit = hit or next((h for h in doc.found("modality") if h.key and h.key in name), None)
    return doc.provenance(hit.start, hit.end, rule) if hit else None
