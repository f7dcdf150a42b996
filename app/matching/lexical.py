"""Exact and synonym matching of facts against requirement terms, on normalised text.

Normalising folds case, strips accents (Echokardiographie = echokardiographie, créatinine =
creatinine, Hämoglobin = hamoglobin) and turns punctuation into spaces (X-ray = x ray, PT/INR =
pt inr). Then:
- a structured fact (lab, study, letter, ...) matches when its name equals a term once filler
  words ("serum", "level", ...) are dropped; a study/procedure/letter name also matches when it
  contains a term of 3+ characters as whole words ("transthoracic echocardiogram"). Lab names
  must be equal, so "haemoglobin A1c" never counts as "haemoglobin". Only whole-name equality
  drops fillers; searching inside names and text uses the full term.
- a text snippet matches when it contains a term as whole words that is not negated or merely
  planned nearby ("no echocardiogram", "chest X-ray requested"); a snippet with any such cue is
  also kept from embedding matches (`has_negation`), which cannot tell "no echo" from "echo".
Everything here is pure and deterministic.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_NON_WORD = re.compile(r"[\W_]+")
_FILLER = frozenset({"serum", "plasma", "level", "levels", "test", "result", "results", "value", "report"})
_NEGATION_BEFORE = frozenset(
    {"no", "not", "without", "pending", "awaiting", "await", "declined", "refused", "never", "nor", "need",
     "needs", "needed", "require", "requires", "required", "request", "requested", "order", "ordered",
     "schedule", "scheduled", "plan", "planned", "recommend", "recommended", "arrange", "book"}
)
_NEGATION_AFTER = frozenset(
    {"pending", "requested", "required", "needed", "planned", "scheduled", "ordered", "awaited", "recommended",
     "outstanding", "missing"}
)
_WINDOW_BEFORE = 3
_WINDOW_AFTER = 2
MIN_CONTAINED_TERM = 3


def normalise(text: str) -> str:
    """Case-folded, accent-free, punctuation-free text with single spaces."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NON_WORD.sub(" ", stripped.casefold()).strip()


def drop_fillers(normalised: str) -> str:
    """`normalised` without filler words, unless that would leave nothing."""
    words = [w for w in normalised.split() if w not in _FILLER]
    return " ".join(words) if words else normalised


@lru_cache(maxsize=4096)
def term_keys(terms: tuple[str, ...]) -> frozenset[str]:
    """The forms of `terms` that whole names must equal: normalised, fillers dropped (cached)."""
    return frozenset(drop_fillers(normalise(t)) for t in terms if normalise(t))


@lru_cache(maxsize=4096)
def phrase_keys(terms: tuple[str, ...]) -> frozenset[str]:
    """The forms of `terms` searched for inside names and text: normalised, fillers kept, so
    "cardiology report" is never shortened to "cardiology" (cached)."""
    return frozenset(normalise(t) for t in terms if normalise(t))


def name_equals(name: str, keys: frozenset[str]) -> bool:
    """True when the fact name, normalised and without fillers, is one of the terms."""
    return drop_fillers(normalise(name)) in keys


def name_contains(name: str, keys: frozenset[str]) -> bool:
    """True when the normalised name contains a term (3+ characters) as whole words."""
    padded = f" {normalise(name)} "
    return any(len(k) >= MIN_CONTAINED_TERM and f" {k} " in padded for k in keys)


def text_mentions(text: str, keys: frozenset[str]) -> bool:
    """True when the text mentions a term (3+ characters) with no negation or plan nearby."""
    words = normalise(text).split()
    return any(len(key) >= MIN_CONTAINED_TERM and _affirmed_in(words, key.split()) for key in keys)


def has_negation(text: str) -> bool:
    """True when the text has any negation or plan cue: too uncertain for an embedding match."""
    words = set(normalise(text).split())
    return not (_NEGATION_BEFORE.isdisjoint(words) and _NEGATION_AFTER.isdisjoint(words))


def _affirmed_in(words: list[str], term: list[str]) -> bool:
    size = len(term)
    for start in range(len(words) - size + 1):
        if words[start : start + size] != term:
            continue
        before = words[max(0, start - _WINDOW_BEFORE) : start]
        after = words[start + size : start + size + _WINDOW_AFTER]
        if _NEGATION_BEFORE.isdisjoint(before) and _NEGATION_AFTER.isdisjoint(after):
            return True
    return False
