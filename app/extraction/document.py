"""A document prepared for extraction: folded text, vocabulary hits, sentences and sections.

Sentences end at `.;!?` followed by a space (not the period of a dotted abbreviation, "V.a."),
and at a line break unless the next line starts in lower case (a wrapped line continues its
sentence). Sections come from headings with a known keyword ("ALLERGIES", "Family history:",
"Plan:" ...): a heading with text after its colon covers that line only, a heading alone on its
line covers the lines up to the next heading."""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

from app.extraction.schemas import Provenance
from app.extraction.text import fold_map, tokenize
from app.extraction.vocabulary import Hit, Vocabulary

_ABBREVIATION = r"(?<![^A-Za-z][A-Za-z]\.[A-Za-z])(?<!^[A-Za-z]\.[A-Za-z])"  # "V.a." / "Z.n." end no sentence
_SENTENCE_END = re.compile(_ABBREVIATION + r"[.;!?](?=\s)|\n(?![ ]*[a-z])", re.MULTILINE)
_PREFIX_HEADING = re.compile(r"^[ ]*(?:[-\d]+[.)]?[ ]*)?([A-Za-z][A-Za-z /&'()\-]{0,50}?)[ ]*:[ ]*(.*)$")
_WORDS = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Section:
    start: int
    end: int
    kind: str


@dataclass
class Document:
    """The folded text of all pages and everything found in it.

    Hits of each category are in text order; sections are disjoint and in text order.
    """

    text: str
    hits: dict[str, list[Hit]]
    sentence_ends: list[int]
    sections: list[Section]
    title: str
    pages: list[str] = field(default_factory=list, repr=False)
    origin: list[int] = field(default_factory=list, repr=False)  # folded offset -> offset in the joined pages
    _starts: dict[str, list[int]] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, pages: list[str], vocabulary: Vocabulary) -> Document:
        text, origin = fold_map("\n".join(pages))
        hits = vocabulary.index.scan(tokenize(text), text)
        ends = [m.end() for m in _SENTENCE_END.finditer(text)] + [len(text)]
        head = " ".join(text[:400].lower().split())
        return cls(text, hits, ends, _sections(text, vocabulary), head, list(pages), origin)

    def provenance(self, start: int, end: int, rule: str) -> Provenance | None:
        """The page and page-relative span of the folded span [start, end), clipped to its page."""
        if not self.pages or not 0 <= start < end <= len(self.origin):
            return None
        first, last = self.origin[start], self.origin[end - 1] + 1
        page_start = 0
        for number, page in enumerate(self.pages, start=1):
            if first < page_start + len(page) or number == len(self.pages):
                s, e = max(first - page_start, 0), min(last - page_start, len(page))
                return Provenance(page=number, start=s, end=e, text=page[s:e], rule=rule)
            page_start += len(page) + 1
        return None

    def found(self, category: str) -> list[Hit]:
        """Hits of a category, blockers removed."""
        return [h for h in self.hits.get(category, []) if h.key is not None]

    def sentence(self, pos: int) -> tuple[int, int]:
        """(start, end) of the sentence containing `pos`."""
        i = bisect.bisect_right(self.sentence_ends, pos)
        start = self.sentence_ends[i - 1] if i else 0
        end = self.sentence_ends[i] if i < len(self.sentence_ends) else len(self.text)
        return start, end

    def section(self, pos: int) -> str | None:
        """Kind of the section containing `pos` ("allergies", "plan", ...), if any."""
        starts = self._starts.get("section")
        if starts is None:
            starts = self._starts["section"] = [section.start for section in self.sections]
        i = bisect.bisect_right(starts, pos) - 1
        return self.sections[i].kind if i >= 0 and pos < self.sections[i].end else None

    def within(self, category: str, start: int, end: int) -> list[Hit]:
        """Hits of a category (blockers included) lying entirely within [start, end)."""
        hits = self.hits.get(category, [])
        starts = self._starts.get(category)
        if starts is None:
            starts = self._starts[category] = [h.start for h in hits]
        found = []
        for i in range(bisect.bisect_left(starts, start), len(hits)):
            if hits[i].start >= end:
                break
            if hits[i].end <= end:
                found.append(hits[i])
        return found

    def cues(self, cue: str, start: int, end: int) -> list[Hit]:
        """Cue hits of one kind lying entirely within [start, end), pseudo-triggers left out."""
        return [hit for hit in self.within(f"cue.{cue}", start, end) if hit.key is not None]


def _sections(text: str, vocabulary: Vocabulary) -> list[Section]:
    sections: list[Section] = []
    block: tuple[int, str] | None = None
    pos = 0
    for line in text.split("\n"):
        line_end = pos + len(line)
        heading = _heading(line, vocabulary)
        if heading:
            kind, inline = heading
            if block:
                sections.append(Section(block[0], pos, block[1]))
                block = None
            if inline:
                sections.append(Section(pos, line_end + 1, kind))
            else:
                block = (pos, kind)
        pos = line_end + 1
    if block:
        sections.append(Section(block[0], len(text), block[1]))
    return sections


def _heading(line: str, vocabulary: Vocabulary) -> tuple[str, bool] | None:
    """(kind, has inline content) when the line is a known heading."""
    m = _PREFIX_HEADING.match(line)
    if m:
        kind = _heading_kind(m.group(1), vocabulary)
        return (kind, bool(m.group(2).strip())) if kind else None
    stripped = line.strip()
    letters = [c for c in stripped if c.isalpha()]
    if len(letters) >= 3 and all(c.isupper() for c in letters) and len(stripped.split()) <= 8:
        kind = _heading_kind(stripped, vocabulary)
        return (kind, False) if kind else None
    return None


def _heading_kind(heading: str, vocabulary: Vocabulary) -> str | None:
    words = " " + " ".join(_WORDS.findall(heading.lower())) + " "
    for kind, keywords in vocabulary.sections:
        if any(f" {keyword} " in words for keyword in keywords):
            return kind
    return None
