"""The clinical vocabulary (`vocabulary.json`) compiled for fast matching.

`TermIndex` finds every synonym of every category in one pass over a document's tokens: at each
token it tries the longest n-gram first, and per category keeps matches leftmost-longest and
non-overlapping ("type 2 diabetes mellitus" wins over "diabetes"). Synonyms with capitals match
that exact case only. Entries with no key are blockers: they consume the text ("ST depression")
so a shorter synonym inside it ("depression") cannot match, and are then ignored.

Invariant: the JSON file is the only source of clinical terms; code holds no term lists.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from app.extraction.text import Token, fold, spelling_variants, tokenize

VOCABULARY_PATH = Path(__file__).with_name("vocabulary.json")
_GAP_CHARS = set("-./()'+")


class Hit(NamedTuple):
    category: str
    key: str | None
    start: int
    end: int


class _Entry(NamedTuple):
    category: str
    key: str | None
    exact: tuple[str, ...] | None  # original-case tokens when the synonym is case-sensitive


class TermIndex:
    """Synonym n-grams of all categories, matched leftmost-longest per category."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, ...], list[_Entry]] = defaultdict(list)
        self._longest: dict[str, int] = {}

    def add(self, category: str, key: str | None, synonym: str) -> None:
        for variant in spelling_variants(synonym):
            tokens = tokenize(fold(variant))
            if not tokens:
                continue
            lows = tuple(t.low for t in tokens)
            exact = tuple(t.text for t in tokens) if variant != variant.lower() else None
            if any(e.category == category and e.exact == exact for e in self._entries[lows]):
                continue  # first definition of a synonym wins
            self._entries[lows].append(_Entry(category, key, exact))
            self._longest[lows[0]] = max(self._longest.get(lows[0], 0), len(lows))

    def scan(self, tokens: list[Token], text: str) -> dict[str, list[Hit]]:
        """All hits per category, in text order."""
        hits: dict[str, list[Hit]] = defaultdict(list)
        free: dict[str, int] = defaultdict(int)
        for i, token in enumerate(tokens):
            longest = self._longest.get(token.low)
            if longest:
                self._match_at(tokens, text, i, longest, hits, free)
        return hits

    def _match_at(self, tokens: list[Token], text: str, i: int, longest: int,
                  hits: dict[str, list[Hit]], free: dict[str, int]) -> None:
        reach = _joined_reach(tokens, text, i, longest)
        matched: set[str] = set()
        for j in range(reach, i, -1):
            for entry in self._entries.get(tuple(t.low for t in tokens[i:j]), ()):
                if entry.category in matched or free[entry.category] > i:
                    continue
                if entry.exact and tuple(t.text for t in tokens[i:j]) != entry.exact:
                    continue
                matched.add(entry.category)
                free[entry.category] = j
                hits[entry.category].append(Hit(entry.category, entry.key, tokens[i].start, tokens[j - 1].end))

    def lookup(self, category: str, text: str) -> str | None:
        """The key of the first synonym of `category` found in `text` (None if none or blocked)."""
        folded = fold(text)
        found = self.scan(tokenize(folded), folded).get(category, [])
        return found[0].key if found else None


def _joined_reach(tokens: list[Token], text: str, i: int, longest: int) -> int:
    """How far (exclusive token index) tokens from i form one phrase: separated by spaces/dashes only."""
    j = i + 1
    while j < len(tokens) and j - i < longest:
        gap = text[tokens[j - 1].end : tokens[j].start]
        stripped = gap.strip()
        if len(stripped) > 2 or any(c not in _GAP_CHARS for c in stripped):
            break
        j += 1
    return j


class UnitMatch(NamedTuple):
    end: int
    keys: tuple[str, ...]


class UnitTable:
    """Unit spellings -> canonical unit keys; an ambiguous spelling ("G/L") yields several keys."""

    def __init__(self, units: list[dict[str, Any]]) -> None:
        self._patterns: list[tuple[str, re.Pattern[str]]] = []
        for unit in units:
            for pattern in unit["patterns"]:
                flags = 0 if pattern != pattern.lower() else re.IGNORECASE
                self._patterns.append((unit["key"], re.compile(pattern + r"(?![A-Za-z])", flags)))

    def match(self, text: str, pos: int, endpos: int | None = None) -> UnitMatch | None:
        """The longest unit spelled at `pos` (before `endpos`), with every unit key it may mean."""
        best_end, keys = pos, []
        end = len(text) if endpos is None else endpos
        for key, pattern in self._patterns:
            m = pattern.match(text, pos, end)
            if m and m.end() > best_end:
                best_end, keys = m.end(), [key]
            elif m and m.end() == best_end and key not in keys:
                keys.append(key)
        return UnitMatch(best_end, tuple(keys)) if keys else None


@dataclass(frozen=True)
class LabSpec:
    """A lab: canonical unit, plausible range in that unit, LOINC, and conversions into it."""

    name: str
    unit: str
    loinc: str
    low: float
    high: float
    decimals: int
    convert: dict[str, tuple[float, float]] = field(default_factory=dict)

    def to_canonical(self, value: float, unit: str) -> float:
        """`value` in `unit` expressed in the canonical unit (factor, offset)."""
        if unit == self.unit:
            return value
        factor, offset = self.convert[unit]
        return round(value * factor + offset, self.decimals)

    def accepts(self, unit: str) -> bool:
        return unit == self.unit or unit in self.convert


@dataclass(frozen=True)
class SiteCondition:
    """A condition coded by body site and side (osteoarthritis of the right knee -> M17.11)."""

    id: str
    codes: dict[str, dict[str, str]]


@dataclass(frozen=True)
class Modality:
    key: str
    template: str


@dataclass
class Vocabulary:
    """Everything the extractors and the canonicaliser need, compiled once."""

    index: TermIndex
    units: UnitTable
    labs: dict[str, LabSpec]
    displays: dict[str, str]
    site_conditions: dict[str, SiteCondition]
    site_labels: dict[str, str]
    modalities: dict[str, Modality]
    overrides: dict[str, dict[str, str]]
    sections: list[tuple[str, list[str]]]
    lab_report_titles: list[str]

    @classmethod
    def from_file(cls, path: Path = VOCABULARY_PATH) -> Vocabulary:
        return _compile(json.loads(path.read_text(encoding="utf-8")))


@lru_cache(maxsize=1)
def default_vocabulary() -> Vocabulary:
    """The packaged vocabulary, compiled once per process."""
    return Vocabulary.from_file()


def _compile(data: dict[str, Any]) -> Vocabulary:
    index = TermIndex()
    _index_terms(index, data)
    return Vocabulary(
        index=index,
        units=UnitTable(data["units"]),
        labs={lab["name"]: _lab_spec(lab) for lab in data["labs"]},
        displays={c["code"]: c["display"] for c in data["conditions"]} | data["icd10_displays"],
        site_conditions={s["id"]: SiteCondition(s["id"], s["codes"]) for s in data["site_conditions"]},
        site_labels={key: site["label"] for key, site in data["sites"].items()},
        modalities={m["key"]: Modality(m["key"], m["template"]) for m in data["imaging"]["modalities"]},
        overrides=data["imaging"]["overrides"],
        sections=[(kind, [_words(k) for k in keywords]) for kind, keywords in data["sections"]],
        lab_report_titles=[fold(t).lower() for t in data["lab_report_titles"]],
    )


def _words(phrase: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", fold(phrase).lower()))


def _lab_spec(lab: dict[str, Any]) -> LabSpec:
    convert = {u: (c[0], c[1]) if isinstance(c, list) else (float(c), 0.0) for u, c in lab["convert"].items()}
    low, high = lab["range"]
    return LabSpec(lab["name"], lab["unit"], lab["loinc"], low, high, lab["decimals"], convert)


def _index_terms(index: TermIndex, data: dict[str, Any]) -> None:
    named = {"medication": "medications", "allergen": "allergens", "lab": "labs",
             "study": "studies", "procedure": "procedures", "frequency": "frequencies"}
    for category, section in named.items():
        for entry in data[section]:
            for synonym in entry["synonyms"]:
                index.add(category, entry["name"], synonym)
    for entry in data["conditions"]:
        for synonym in entry["synonyms"]:
            index.add("condition", entry["code"], synonym)
    for entry in data["site_conditions"]:
        for term in entry["terms"]:
            index.add("site_condition", entry["id"], term)
        for site, compounds in entry["compounds"].items():
            for term in compounds:
                index.add("site_condition", f"{entry['id']}@{site}", term)
    _index_places(index, data)
    for section, phrases in data["blockers"].items():
        category = {v: k for k, v in named.items()}.get(section, "condition")
        for phrase in phrases:
            index.add(category, None, phrase)
    for cue, phrases in data["cues"].items():
        for phrase in phrases:
            index.add(f"cue.{cue}", cue, phrase)
    for reaction in data["reactions"]:
        index.add("reaction", reaction, reaction)


def _index_places(index: TermIndex, data: dict[str, Any]) -> None:
    for key, site in data["sites"].items():
        for word in site["words"]:
            index.add("site", key, word)
        for word in site["plural"]:
            index.add("site", f"{key}*", word)
    for side, words in data["sides"].items():
        for word in words:
            index.add("side", side, word)
    for modality in data["imaging"]["modalities"]:
        for term in modality["terms"]:
            index.add("modality", modality["key"], term)
