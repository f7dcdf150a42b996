"""Text normalisation shared by the vocabulary and the extractors.

`fold` removes accents (Hämoglobin -> Hamoglobin, pénicilline -> penicilline, ağrı -> agri), unifies
dashes and maps a few letters NFKD leaves alone (ı, ß, µ, ×, superscripts via NFKD). Case is kept,
because some abbreviations only mean something in capitals ("MR", "Hb"). Every offset the
extractor works with refers to the folded text; `fold_map` also gives, per folded character, the
offset of the original character it came from (for provenance).

`tokenize` splits folded text into alphanumeric tokens with their offsets; German allergy
compounds ("Penicillinallergie") are split into substance + "allergie". A token's `low` form is
also put in American spelling ("oesophagitis" -> "esophagitis", "haemorrhoids" -> "hemorrhoids"),
in the text and in the vocabulary alike, so every English term (the tabular list's are American)
matches both spellings.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import NamedTuple

_SPECIAL = {
    "ı": "i",
    "ß": "ss",
    "ẞ": "SS",
    "µ": "u",
    "μ": "u",
    "×": "x",
    "æ": "ae",
    "Æ": "AE",
    "œ": "oe",
    "Œ": "OE",
    "ø": "o",
    "Ø": "O",
    "ł": "l",
    "Ł": "L",
    "đ": "d",
    "ð": "d",
    "’": "'",
    "‘": "'",
    "´": "'",
    "`": "'",
    "“": '"',
    "”": '"',
    "„": '"',
    "«": '"',
    "»": '"',
    "\u00a0": " ",
    "\u2009": " ",
    "\u202f": " ",
    "\t": " ",
    "·": ".",
    "•": "-",
    "≤": "<",
    "≥": ">",
}
_DASHES = "‐‑‒–—―−﹘﹣－"
_TOKEN = re.compile(r"[A-Za-z0-9]+")
_COMPOUND = re.compile(r"([a-z]{4,}?)(allergie|allergy|unvertraglichkeit)")


class Token(NamedTuple):
    start: int
    end: int
    text: str
    low: str


def _fold_char(ch: str) -> str:
    if ch in _SPECIAL:
        return _SPECIAL[ch]
    if ch in _DASHES:
        return "-"
    decomposed = unicodedata.normalize("NFKD", ch)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def fold(text: str) -> str:
    """Accent-free, dash-normalised text; ASCII stays as it is."""
    if text.isascii():
        return text.replace("\t", " ")
    return "".join(ch if ch.isascii() and ch != "\t" else _fold_char(ch) for ch in text)


def fold_map(text: str) -> tuple[str, list[int]]:
    """`fold(text)` and, for each of its characters, the index of the character it came from."""
    if text.isascii():
        return text.replace("\t", " "), list(range(len(text)))
    parts, origin = [], []
    for i, ch in enumerate(text):
        folded = ch if ch.isascii() and ch != "\t" else _fold_char(ch)
        parts.append(folded)
        origin.extend([i] * len(folded))
    return "".join(parts), origin


def tokenize(text: str) -> list[Token]:
    """Alphanumeric tokens of folded `text`, compounds split, with offsets into `text`."""
    tokens: list[Token] = []
    for m in _TOKEN.finditer(text):
        word, low, start = m.group(), m.group().lower(), m.start()
        split = _COMPOUND.fullmatch(low)
        if split:
            cut = start + len(split.group(1))
            tokens.append(Token(start, cut, word[: cut - start], split.group(1)))
            tokens.append(Token(cut, m.end(), word[cut - start :], split.group(2)))
        else:
            tokens.append(Token(start, m.end(), word, _american(low)))
    return tokens


def _american(low: str) -> str:
    """ "oe"/"ae" as "e" (oesophagus, haemoglobin, diarrhoea), the same in text and vocabulary."""
    return low.replace("ae", "e").replace("oe", "e") if "ae" in low or "oe" in low else low


def spelling_variants(phrase: str) -> Iterator[str]:
    """The phrase plus its American spelling (haemoglobin -> hemoglobin, oedema -> edema)."""
    yield phrase
    if phrase != phrase.lower():
        return
    american = phrase.replace("ae", "e").replace("oe", "e").replace("isation", "ization")
    if american != phrase:
        yield american


_DECIMAL = re.compile(r"\d{1,3}(?:,\d{3})+")


def parse_number(raw: str) -> float:
    """A number as written: decimal comma ("13,2") or thousands separator ("245,000")."""
    raw = raw.strip()
    if _DECIMAL.fullmatch(raw):
        return float(raw.replace(",", ""))
    if "," in raw and "." in raw:
        raw = raw.replace(".", "")
    return float(raw.replace(",", "."))
