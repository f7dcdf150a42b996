"""Medications (generic name, dose, frequency) and allergies (substance, reaction).

A drug name (generic or brand -> generic) is a current medication unless it is negated, stopped or
not taken ("discontinued", "abgesetzt", "se suspende", "does not take", "kullanmiyor"), listed
under discontinued medications, about a relative, or part of an allergy statement. Plans count:
"start", "continue", "continuar con", "weiter mit" name current medications. Its dose and
frequency are read from the rest of its line/sentence up to the next drug name.

An allergen - or any drug - is an allergy when it sits in an allergies section or in a sentence with
an allergy cue ("allergic to", "alergia a", "Penicillinallergie", "alerjisi"), and is not negated
("NKDA", "no known drug allergies", "keine Allergien", "alerjisi yok"); a drug with a dose in an
allergies section without a cue is a medication listed next to them. Its reaction is the phrase
after it ("- rash and facial swelling", "(urticaria)") when that phrase names a known reaction.
"""

from __future__ import annotations

import re

from app.extraction.context import asserted, in_sentence
from app.extraction.document import Document
from app.extraction.schemas import Allergy, Medication
from app.extraction.vocabulary import Hit, Vocabulary

_DOSE = re.compile(
    r"(?<![\w.])(\d+(?:[.,]\d+)?(?:\s*/\s*\d+(?:[.,]\d+)?)?)\s*"
    r"(mg|mcg|ug|g|ml|iu|ie|ui|units?|unidades|einheiten|mmol|puffs?|drops?|tablets?|tabs?|caps?)(?![A-Za-z])",
    re.IGNORECASE,
)
_DOSE_UNITS = {
    "ug": "mcg",
    "ie": "IU",
    "ui": "IU",
    "iu": "IU",
    "unit": "units",
    "unidades": "units",
    "einheiten": "units",
    "tab": "tablet",
    "tabs": "tablets",
    "cap": "capsule",
    "caps": "capsules",
}
_REACTION_LEAD = re.compile(r"[ ]*(?:[-:>(]|causes|caused|reaction:?|with|con|mit|avec|ile)[ ]*", re.IGNORECASE)
_REACTION_END = re.compile(r"[);\n]|\.(?=\s)|$")
SEGMENT = 90
STOP_WINDOW = 40


def extract_medications(doc: Document, vocabulary: Vocabulary) -> list[Medication]:
    """Current medications in document order, one per generic name."""
    hits = doc.found("medication")
    meds: dict[str, Medication] = {}
    for i, hit in enumerate(hits):
        end = _segment_end(doc, hit, hits[i + 1].start if i + 1 < len(hits) else len(doc.text))
        previous_end = hits[i - 1].end if i else 0
        if not _current(doc, hit, previous_end, end):
            continue
        med = Medication(
            name=hit.key or "",
            dose=dose(doc.text[hit.end : end]),
            frequency=_frequency(doc, hit.end, end),
            provenance=doc.provenance(hit.start, _trimmed_end(doc, hit.start, end), "vocabulary-term"),
        )
        known = meds.get(med.name)
        if known is None or (known.dose is None and med.dose):
            meds[med.name] = med
    return [med for name, med in meds.items() if not _named_more_precisely(name, meds, vocabulary)]


def _named_more_precisely(name: str, meds: dict[str, Medication], vocabulary: Vocabulary) -> bool:
    """A class name ("insulin") when a member of the class is also listed ("insulin detemir"): the
    same drug mentioned once by its class ("sous insuline") and once by name."""
    return any(member in meds for member in vocabulary.medication_classes.get(name, ()))


def _current(doc: Document, hit: Hit, previous_end: int, end: int) -> bool:
    """Taken now: asserted, not stopped or not taken, not discontinued, not an allergen."""
    if doc.section(hit.start) == "discontinued" or not asserted(doc, hit):
        return False
    return not (_stopped(doc, hit, previous_end, end) or _allergy_context(doc, hit, end))


def extract_allergies(doc: Document, vocabulary: Vocabulary) -> list[Allergy]:
    """Allergies in document order, one per substance."""
    allergies: dict[str, Allergy] = {}
    for hit in _allergy_candidates(doc):
        cue = in_sentence(doc, "allergy", hit)
        section = doc.section(hit.start) == "allergies"
        if not (cue or section) or not asserted(doc, hit):
            continue
        if not cue and dose(doc.text[hit.end : _segment_end(doc, hit, len(doc.text))]):
            continue  # a drug with a dose, listed next to the allergies
        rule = "allergy-statement" if cue else "allergies-section"
        allergies.setdefault(
            hit.key or "",
            Allergy(
                substance=hit.key or "",
                reaction=_reaction(doc, hit),
                provenance=doc.provenance(hit.start, hit.end, rule),
            ),
        )
    return list(allergies.values())


def _allergy_candidates(doc: Document) -> list[Hit]:
    """Allergen hits, and drug hits that no allergen hit overlaps, in text order."""
    allergens = doc.found("allergen")
    drugs = [d for d in doc.found("medication") if not any(a.start < d.end and d.start < a.end for a in allergens)]
    return sorted(allergens + drugs, key=lambda hit: hit.start)


def dose(text: str) -> str | None:
    """The first dose in `text`, normalised ("75 mg", "75 mcg", "10 units")."""
    m = _DOSE.search(text)
    if not m:
        return None
    unit = m.group(2).lower()
    amount = m.group(1).replace(",", ".").replace(" ", "")
    return f"{amount} {_DOSE_UNITS.get(unit, unit)}"


def _segment_end(doc: Document, hit: Hit, next_start: int) -> int:
    _, sentence_end = doc.sentence(hit.start)
    line_end = doc.text.find("\n", hit.end)
    line_end = len(doc.text) if line_end < 0 else line_end
    return min(next_start, sentence_end, line_end, hit.end + SEGMENT)


def _trimmed_end(doc: Document, start: int, end: int) -> int:
    """`end` moved back over trailing spaces and separators (the span ends on the last word)."""
    return start + len(doc.text[start:end].rstrip(" ,;:.-/"))


def _frequency(doc: Document, start: int, end: int) -> str | None:
    found = [hit.key for hit in doc.within("frequency", start, end) if hit.key]
    return found[0] if found else None


def _stopped(doc: Document, hit: Hit, previous_end: int, end: int) -> bool:
    """ "stop/discontinued aspirin" before it (not past the previous drug), or "aspirin was stopped"."""
    s0, _ = doc.sentence(hit.start)
    before = doc.cues("med_stop", max(s0, previous_end, hit.start - STOP_WINDOW), hit.start)
    return bool(before or doc.cues("med_stop_after", hit.end, end))


def _allergy_context(doc: Document, hit: Hit, end: int) -> bool:
    """True when a drug name is mentioned as an allergen rather than taken."""
    if in_sentence(doc, "allergy", hit):
        return True
    return doc.section(hit.start) == "allergies" and dose(doc.text[hit.end : end]) is None


def _reaction(doc: Document, hit: Hit) -> str | None:
    pos = hit.end
    for cue in doc.cues("allergy", hit.end, hit.end + 30):  # "Penicillinallergie (Exanthem)"
        if not doc.text[pos : cue.start].strip(" -"):
            pos = cue.end
    lead = _REACTION_LEAD.match(doc.text, pos)
    if not lead or lead.end() == pos:
        return None
    end = _REACTION_END.search(doc.text, lead.end()).start()  # type: ignore[union-attr]  # `$` always matches
    phrase = doc.text[lead.end() : end].strip(" .,:-")
    reactions = doc.within("reaction", lead.end(), end)
    if not reactions or len(phrase) > 80:
        return None
    return " ".join(phrase.lower().split())
