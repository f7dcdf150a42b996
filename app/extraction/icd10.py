"""ICD-10-CM coding rules, checked against the official tabular list (`simple-icd-10-cm` data).

`billable_code` turns a code as written into a valid, billable one, or None: a made-up extension
is cut back to the longest valid code ("I10.90" -> "I10"), and a category that is not billable
is refined to the child the context supports ("M16.1" + "right hip" -> "M16.11"), else to its
"unspecified" child ("M16.1" -> "M16.10"), else to its "without ..." child ("I25.1" ->
"I25.10"). `coherent_codes` applies the list's rules to the set of codes of one document:

- a combination code replaces the codes it combines (`combinations`, e.g. I25.10 + I20.0 -> I25.110);
- an "unspecified" code is dropped when the same category has a code that leaves less unspecified
  (I48.91 next to I48.0, M75.100 next to M75.121) or a code under the same parent (K05.30 next to
  K05.329), a "without ..." or "uncomplicated" one when it has a combination code "with ..." (E11.9
  next to E11.65, J45.909 next to J45.901);
- a symptom code is dropped next to a diagnosis it is integral to (`integral`, e.g. chest pain R07.-
  next to a myocardial infarction I21.-);
- of two codes whose Excludes1 notes exclude one another, only one stays: the combination ("with ..."),
  else the non-symptom code, else the longer one.

Invariant: every code these functions return is a leaf (billable) of the tabular list.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any


class _TabularList:
    """`simple_icd_10_cm`, imported at first use: reading the tabular list takes seconds, which
    every process start (the CLI included) would pay even when it never codes a condition."""

    def __getattr__(self, name: str) -> Any:  # only for names not looked up before
        with warnings.catch_warnings():  # the package reads its data with a deprecated importlib call
            warnings.simplefilter("ignore", DeprecationWarning)
            import simple_icd_10_cm

        value = getattr(simple_icd_10_cm, name)
        setattr(self, name, value)
        return value


def load_tabular_list() -> None:
    """Read the tabular list now (a warm-up, so the first document does not wait for it)."""
    cm.is_valid_item("I10")


cm = _TabularList()

_WORD = re.compile(r"[a-z0-9]+")
_FUNCTION_WORDS = frozenset(
    {"a", "an", "and", "at", "by", "for", "in", "of", "on", "or", "the", "to"}
)  # never choose a child
_NOTE_CODES = re.compile(r"\(([A-Z0-9.,\- ]+)\)\s*$")
_SYMPTOM_CHAPTER = "R"
# A child the context does not choose: the "unspecified" one, the "without ..." one, and for a 7th
# character of the encounter (injuries, pathological fractures M80.-) the initial encounter (the
# patient is in active treatment).
_DEFAULT_CHILD = ({"unspecified"}, {"without"}, {"initial", "encounter"})
_ENCOUNTER_CHAPTERS = ("M", "S", "T")  # injuries and the pathological fractures of chapter 13


@dataclass(frozen=True)
class IntegralSymptom:
    """Symptom codes (prefixes) that are part of any of the diagnoses (prefixes): not coded with them."""

    symptoms: tuple[str, ...]
    diagnoses: tuple[str, ...]


@dataclass(frozen=True)
class Combination:
    """Codes (prefixes) that together are coded as `code`; `replaces` are the prefixes it absorbs."""

    when: tuple[str, ...]
    replaces: tuple[str, ...]
    code: str


def is_billable(code: str) -> bool:
    """A valid code of the tabular list that is a leaf (billable)."""
    return cm.is_valid_item(code) and cm.is_leaf(code)


def description(code: str) -> str:
    """The tabular list's description of a valid code."""
    return cm.get_description(code)


def billable_code(code: str, context: str = "") -> str | None:
    """The most specific billable code that `code` and its context support, or None."""
    valid = _longest_valid_prefix(code.strip().upper())
    while valid is not None and not cm.is_leaf(valid):
        valid = _best_child(valid, _words(context))
    return valid


def coherent_codes(
    codes: Sequence[str], combinations: Iterable[Combination] = (), integral: Iterable[IntegralSymptom] = ()
) -> list[str]:
    """Billable codes in their order: combined, specific over unspecified, no symptom integral to a
    diagnosis, Excludes1 pairs resolved."""
    kept = list(dict.fromkeys(code for code in codes if is_billable(code)))
    kept = _combine(kept, combinations)
    kept = [code for code in kept if not _less_specific(code, kept)]
    kept = [code for code in kept if not _integral(code, kept, integral)]
    return _without_excluded(kept)


def _integral(code: str, codes: list[str], integral: Iterable[IntegralSymptom]) -> bool:
    return any(
        code.startswith(rule.symptoms) and any(c.startswith(rule.diagnoses) for c in codes if c != code)
        for rule in integral
    )


def _longest_valid_prefix(code: str) -> str | None:
    while code and not cm.is_valid_item(code):
        code = code[:-1].rstrip(".")
    return code if code and (cm.is_category(code) or not cm.is_chapter_or_block(code)) else None  # C50 is both


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def _best_child(code: str, context: set[str]) -> str | None:
    """The child whose own description words the context names, else the "unspecified" one."""
    children = cm.get_children(code)
    parent_words = _words(cm.get_description(code))
    context = context - _FUNCTION_WORDS
    scores = [(len((_words(cm.get_description(c)) - parent_words) & context), c) for c in children]
    best = max((score for score, _ in scores), default=0)
    if best and sum(1 for score, _ in scores if score == best) == 1:
        return next(c for score, c in scores if score == best)
    own = {c: _words(cm.get_description(c)) - parent_words for c in children}
    encounters = code.startswith(_ENCOUNTER_CHAPTERS) and any("encounter" in own[c] for c in children)
    for default in _DEFAULT_CHILD if encounters else _DEFAULT_CHILD[:2]:
        found = [c for c in children if default <= own[c]]
        if found:
            return found[0]
    return None


def _matches(code: str, prefixes: Iterable[str]) -> bool:
    return any(code.startswith(prefix) for prefix in prefixes)


def _combine(codes: list[str], combinations: Iterable[Combination]) -> list[str]:
    for combination in combinations:
        if all(any(c.startswith(p) for c in codes) for p in combination.when):
            at = next((i for i, c in enumerate(codes) if _matches(c, combination.replaces)), len(codes))
            codes = [c for c in codes if not _matches(c, combination.replaces)]
            if combination.code not in codes:
                codes.insert(min(at, len(codes)), combination.code)
    return codes


def _less_specific(code: str, codes: list[str]) -> bool:
    """An unspecified, "without" or "uncomplicated" code next to a more specific one of its category:
    one that leaves fewer things unspecified (M75.100 next to M75.121, K08.409 next to K08.429), or
    as many but deeper under the same parent (K05.30 "chronic periodontitis, unspecified" next to K05.329)."""
    text = cm.get_description(code).lower()
    siblings = [c for c in codes if c != code and c[:3] == code[:3]]
    if _is_combination(code):  # "with" codes of one category code different complications (E10.319, E10.22)
        siblings = [c for c in siblings if not _is_combination(c)]
    unspecified = text.count("unspecified")
    parent = cm.get_parent(code)
    if unspecified and any(
        cm.get_description(c).lower().count("unspecified") < unspecified
        or (c.startswith(parent) and len(c) > len(code))
        for c in siblings
    ):
        return True
    return ("without" in text or "uncomplicated" in text) and any(_is_combination(c) for c in siblings)


def _is_combination(code: str) -> bool:
    text = cm.get_description(code).lower()
    return " with " in f" {text} ".replace("without", "")


def _without_excluded(codes: list[str]) -> list[str]:
    dropped: set[str] = set()
    for i, a in enumerate(codes):
        for b in codes[i + 1 :]:
            if a in dropped or b in dropped or not (_excludes(a, b) or _excludes(b, a)):
                continue
            dropped.add(min((a, b), key=_priority))
    return [code for code in codes if code not in dropped]


def _priority(code: str) -> tuple[bool, bool, int]:
    """Which of an Excludes1 pair to keep: a combination, then a non-symptom, then the longer code."""
    return _is_combination(code), not code.startswith(_SYMPTOM_CHAPTER), len(code)


def _excludes(code: str, other: str) -> bool:
    """True when an Excludes1 note of `code` or one of its ancestors names `other`."""
    return any(_in_note(other, note) for note in _excludes1(code))


@lru_cache(maxsize=4096)
def _excludes1(code: str) -> tuple[str, ...]:
    items = [code, *(a for a in cm.get_ancestors(code) if not cm.is_chapter(a))]
    notes = []
    for item in items:
        for note in cm.get_excludes1(item):
            m = _NOTE_CODES.search(note)
            if m:
                notes += [part.strip() for part in m.group(1).split(",") if part.strip()]
    return tuple(notes)


def _in_note(code: str, note: str) -> bool:
    """Whether `code` falls under a note's code, category ("I25.1-", "E08.-") or range ("O10-O11")."""
    compact = code.replace(".", "")
    bounds = [b.rstrip("-").replace(".", "") for b in note.split("-") if b.strip(".")]
    if len(bounds) == 2 and bounds[0] and bounds[1]:
        lo, hi = bounds
        return lo <= compact[: len(lo)] and compact[: len(hi)] <= hi
    head = note.rstrip("-").rstrip(".").replace(".", "")
    return bool(head) and compact.startswith(head)
