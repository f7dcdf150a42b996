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
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from app.extraction.icd10 import Combination, IntegralSymptom
from app.extraction.text import Token, fold, spelling_variants, tokenize

VOCABULARY_PATH = Path(__file__).with_name("vocabulary.json")
CONTEXT_PATH = Path(__file__).with_name("context.json")
# context.json trigger kind/direction -> cue category (negation and family share the older cue names)
_TRIGGER_CUES = {("negated", "before"): "pre_negation", ("negated", "after"): "post_negation",
                 ("family", "before"): "family", ("family", "after"): "family_after"}
CONTEXT_KINDS = ("negated", "resolved", "hypothetical", "family", "prophylaxis")
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
        free: dict[str, int] = defaultdict(int)  # per category: first token index not yet consumed
        for i, token in enumerate(tokens):
            longest = self._longest.get(token.low)
            if not longest:
                continue
            for j, entry in self._candidates(tokens, text, i, longest):
                if free[entry.category] <= i:
                    free[entry.category] = j
                    hits[entry.category].append(Hit(entry.category, entry.key, token.start, tokens[j - 1].end))
        return hits

    def _candidates(self, tokens: list[Token], text: str, i: int, longest: int) -> Iterator[tuple[int, _Entry]]:
        """(end token index, entry) of synonyms starting at token i, longest first."""
        for j in range(_joined_reach(tokens, text, i, longest), i, -1):
            for entry in self._entries.get(tuple(t.low for t in tokens[i:j]), ()):
                if entry.exact is None or tuple(t.text for t in tokens[i:j]) == entry.exact:
                    yield j, entry

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
    combinations: list[Combination]
    integral_symptoms: list[IntegralSymptom]
    history_codes: dict[str, str]
    procedure_status_codes: dict[str, dict[str, str]]
    modifiers: dict[str, dict[str, str]]  # cue -> {code: more specific code}
    site_conditions: dict[str, SiteCondition]
    site_labels: dict[str, str]
    modalities: dict[str, Modality]
    overrides: dict[str, dict[str, str]]
    sections: list[tuple[str, list[str]]]
    lab_report_titles: list[str]

    @classmethod
    def from_file(cls, path: Path = VOCABULARY_PATH, context: Path = CONTEXT_PATH) -> Vocabulary:
        data = json.loads(path.read_text(encoding="utf-8"))
        return _compile(data, json.loads(context.read_text(encoding="utf-8")))


@lru_cache(maxsize=1)
def default_vocabulary() -> Vocabulary:
    """The packaged vocabulary, compiled once per process."""
    return Vocabulary.from_file()


def _compile(data: dict[str, Any], context: dict[str, Any]) -> Vocabulary:
    index = TermIndex()
    _index_terms(index, data)
    _index_triggers(index, context["languages"])
    sections = [(kind, keywords) for kind, keywords in context["sections"].items()] + data["sections"]
    return Vocabulary(
        index=index,
        units=UnitTable(data["units"]),
        labs={lab["name"]: _lab_spec(lab) for lab in data["labs"]},
        displays={c["code"]: c["display"] for c in data["conditions"]} | data["icd10_displays"],
        combinations=[_combination(c) for c in data["icd10_combinations"]],
        integral_symptoms=[
            IntegralSymptom(tuple(i["symptoms"]), tuple(i["diagnoses"])) for i in data["icd10_integral_symptoms"]
        ],
        history_codes=data["icd10_history_codes"],
        procedure_status_codes=data["procedure_status_codes"],
        modifiers={m["cue"]: m["codes"] for m in data["icd10_modifiers"]},
        site_conditions={s["id"]: SiteCondition(s["id"], s["codes"]) for s in data["site_conditions"]},
        site_labels={key: site["label"] for key, site in data["sites"].items()},
        modalities={m["key"]: Modality(m["key"], m["template"]) for m in data["imaging"]["modalities"]},
        overrides=data["imaging"]["overrides"],
        sections=[(kind, [_words(k) for k in keywords]) for kind, keywords in sections],
        lab_report_titles=[fold(t).lower() for t in data["lab_report_titles"]],
    )


def _combination(entry: dict[str, Any]) -> Combination:
    return Combination(tuple(entry["when"]), tuple(entry["replaces"]), entry["code"])


def _words(phrase: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", fold(phrase).lower()))


def _lab_spec(lab: dict[str, Any]) -> LabSpec:
    convert = {u: (c[0], c[1]) if isinstance(c, list) else (float(c), 0.0) for u, c in lab["convert"].items()}
    low, high = lab["range"]
    return LabSpec(lab["name"], lab["unit"], lab["loinc"], low, high, lab["decimals"], convert)


_NAMED = {"medication": "medications", "allergen": "allergens", "lab": "labs",
          "study": "studies", "procedure": "procedures", "frequency": "frequencies"}


def _index_terms(index: TermIndex, data: dict[str, Any]) -> None:
    for category, section in _NAMED.items():
        for entry in data[section]:
            _add_all(index, category, entry["name"], entry["synonyms"])
    for entry in data["conditions"]:
        _add_all(index, "condition", entry["code"], entry["synonyms"])
    for entry in data["site_conditions"]:
        _add_all(index, "site_condition", entry["id"], entry["terms"])
        for site, compounds in entry["compounds"].items():
            _add_all(index, "site_condition", f"{entry['id']}@{site}", compounds)
    _index_places(index, data)
    _index_context(index, data)


def _index_context(index: TermIndex, data: dict[str, Any]) -> None:
    by_section = {section: category for category, section in _NAMED.items()}
    for section, phrases in data["blockers"].items():
        _add_all(index, by_section.get(section, "condition"), None, phrases)
    for cue, phrases in data["cues"].items():
        _add_all(index, f"cue.{cue}", cue, phrases)
    for modifier in data["icd10_modifiers"]:
        _add_all(index, f"cue.{modifier['cue']}", modifier["cue"], modifier["terms"])
    for reaction in data["reactions"]:
        index.add("reaction", reaction, reaction)


def trigger_cue(kind: str, direction: str) -> str:
    """The cue category of a context.json trigger list ("resolved", "before" -> "resolved_before")."""
    return _TRIGGER_CUES.get((kind, direction), f"{kind}_{direction}")


def _index_triggers(index: TermIndex, languages: dict[str, Any]) -> None:
    """ConText triggers of every language; pseudo-triggers block every trigger category."""
    cues = [trigger_cue(kind, d) for kind in CONTEXT_KINDS for d in ("before", "after")] + ["scope_end"]
    for triggers in languages.values():
        for cue in cues:
            _add_all(index, f"cue.{cue}", None, triggers["pseudo"])
        for kind in CONTEXT_KINDS:
            for direction in ("before", "after"):
                cue = trigger_cue(kind, direction)
                _add_all(index, f"cue.{cue}", cue, triggers[kind][direction])
        _add_all(index, "cue.scope_end", "scope_end", triggers["terminate"])


def _add_all(index: TermIndex, category: str, key: str | None, synonyms: list[str]) -> None:
    for synonym in synonyms:
        index.add(category, key, synonym)


def _index_places(index: TermIndex, data: dict[str, Any]) -> None:
    for key, site in data["sites"].items():
        _add_all(index, "site", key, site["words"])
        _add_all(index, "site", f"{key}*", site["plural"])
    for side, words in data["sides"].items():
        _add_all(index, "side", side, words)
    for modality in data["imaging"]["modalities"]:
        _add_all(index, "modality", modality["key"], modality["terms"])
