"""Lab results: name, value and unit, read from prose, rows and tables.

After each lab name the reader walks the text up to the next lab name: it skips separators,
qualifiers in parentheses ("(fasting)"), dates, flags (H, L, *, HIGH, ↑), reference ranges
("12.0-15.5", "(ref < 100)", "0,8 a 1,2") and comparator values ("< 5.7"), and takes the first plain
number; the unit is the one written right after it (or in parentheses before it, "Hb (g/L) 132"),
which may sit on the next line. A column layout - several names, then their values - is read in
order. The value is converted into the lab's canonical unit (mmol/mol HbA1c -> %, umol/L
creatinine -> mg/dL, g/L haemoglobin -> g/dL ...) and kept only when plausible for that lab.

Invariant: a result is never guessed from a reference range, and a value whose written unit the
lab cannot have is dropped rather than mislabelled. A unit left out is inferred only from the
lab's plausible range in its canonical unit or a known alternative.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from app.extraction.document import Document
from app.extraction.schemas import Lab
from app.extraction.text import parse_number
from app.extraction.vocabulary import Hit, LabSpec, UnitMatch, UnitTable, Vocabulary

_NUM = r"\d+(?:[.,]\d+)*"
_SKIP = re.compile(r"(?:[\s:=|,]|-(?=\s))+")
_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}|\d{1,2}:\d{2}(?::\d{2})?")
_RANGE = re.compile(rf"{_NUM}[ ]*-[ ]*{_NUM}|{_NUM}[ ]+(?:to|a|bis|ile|-)[ ]+{_NUM}")
_COMPARATOR = re.compile(rf"(?:[<>]=?|=<|=>)[ ]*{_NUM}")
_VALUE = re.compile(r"\d+(?:[.,]\d+)*+(?!\d|/\d)")  # possessive: "6,900/uL" is one value; "138/84" none
_PAREN = re.compile(r"\([^()\n]{0,60}\)|\[[^\[\]\n]{0,60}\]")
_FLAG = re.compile(r"(?:HH|LL|H|L|HI|LO|HIGH|LOW|High|Low|ABN|A|N|\*+|\u2191|\u2193|\+|!)(?![A-Za-z0-9])")
_WORD = re.compile(r"[^\s()\[\]]+|.")
LOOKAHEAD = 160
MAX_WORDS = 3


class Reading(NamedTuple):
    value: float
    units: tuple[str, ...] | None
    end: int


def extract_labs(doc: Document, vocabulary: Vocabulary) -> list[Lab]:
    """Lab results in document order; the first result of each lab wins."""
    labs: dict[str, Lab] = {}
    hits = doc.hits.get("lab", [])
    pending: list[Hit] = []
    for i, hit in enumerate(hits):
        limit = hits[i + 1].start if i + 1 < len(hits) else len(doc.text)
        limit = min(limit, hit.end + LOOKAHEAD)
        if hit.key is None:
            pending = []
            continue
        if not _SKIP.sub("", doc.text[hit.end:limit]):
            pending.append(hit)  # a column of names: the values follow the last one
            continue
        group, pending = pending + [hit], []
        for name_hit, reading in _read_group(doc.text, group, limit, vocabulary.units):
            lab = _to_lab(vocabulary.labs[name_hit.key or ""], reading)
            if lab:
                provenance = doc.provenance(name_hit.start, reading.end, "lab-reading")
                labs.setdefault(lab.name, lab.model_copy(update={"provenance": provenance}))
    return list(labs.values())


def _read_group(text: str, group: list[Hit], limit: int, units: UnitTable) -> list[tuple[Hit, Reading]]:
    """Readings for a group of names: one each in order if there are enough, else the last name's."""
    last = group[-1]
    strict = last.end - last.start <= 2
    readings, pos = [], last.end
    for _ in group:
        reading = read_value(text, pos, limit, units, strict=strict)
        if reading is None:
            break
        readings.append(reading)
        pos = reading.end
    if len(readings) == len(group):
        return list(zip(group, readings, strict=True))
    return [(last, readings[0])] if readings else []


def read_value(text: str, pos: int, limit: int, units: UnitTable, *, strict: bool = False) -> Reading | None:
    """The first result value after `pos` (and its unit), skipping ranges, dates and flags."""
    words, unit_before = 0, None
    while pos < limit:
        pos = _skip(text, pos, limit)
        if pos >= limit:
            return None
        if (unit := units.match(text, pos, limit)) is not None:
            unit_before, pos = unit_before or unit, unit.end
            continue
        if m := (
            _DATE.match(text, pos, limit) or _RANGE.match(text, pos, limit) or _COMPARATOR.match(text, pos, limit)
        ):
            pos = m.end()
            continue
        if m := _VALUE.match(text, pos, limit):
            return _reading(text, m, limit, units, unit_before)
        if m := _PAREN.match(text, pos, limit):
            inner = units.match(text, m.start() + 1, m.end() - 1)
            if inner and inner.end == m.end() - 1:
                unit_before = inner
            pos = m.end()
            continue
        if m := _FLAG.match(text, pos, limit):
            pos = m.end()
            continue
        words += 1
        if strict or words > MAX_WORDS:
            return None
        pos = _WORD.match(text, pos, limit).end()  # type: ignore[union-attr]  # matches any char
    return None


def _reading(text: str, value: re.Match[str], limit: int, units: UnitTable,
             unit_before: UnitMatch | None) -> Reading:
    pos = _skip(text, value.end(), limit)
    if m := _FLAG.match(text, pos, limit):
        pos = _skip(text, m.end(), limit)
    unit = units.match(text, pos, limit)
    chosen = unit or unit_before
    end = unit.end if unit else value.end()
    return Reading(parse_number(value.group()), chosen.keys if chosen else None, end)


def _skip(text: str, pos: int, limit: int) -> int:
    m = _SKIP.match(text, pos, limit)
    return m.end() if m else pos


def _to_lab(spec: LabSpec, reading: Reading) -> Lab | None:
    """The reading in the lab's canonical unit, or None if no unit makes it plausible."""
    candidates = [spec.unit, *spec.convert] if reading.units is None else [u for u in reading.units if spec.accepts(u)]
    for unit in candidates:
        value = spec.to_canonical(reading.value, unit)
        if spec.low <= value <= spec.high:
            return Lab(name=spec.name, value=value, unit=spec.unit)
    return None
