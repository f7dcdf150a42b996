"""Whether a mention is asserted about the patient now: negation, family history, history, plans.

A NegEx-style check within the mention's sentence: a negation cue up to `PRE_WINDOW` characters
before the mention (with no scope terminator such as "but"/"except" in between), or a post-negation
cue ("ruled out", Turkish "yok") just after it. The cue lists live in `vocabulary.json`.
"""

from __future__ import annotations

from app.extraction.document import Document
from app.extraction.vocabulary import Hit

PRE_WINDOW = 60
POST_WINDOW = 40


def negated(doc: Document, start: int, end: int) -> bool:
    """True when the mention at [start, end) is negated ("no evidence of diabetes", "NKDA")."""
    s0, s1 = doc.sentence(start)
    lo = max(s0, start - PRE_WINDOW)
    for cue in doc.cues("pre_negation", lo, start):
        if not doc.cues("scope_end", cue.end, start):
            return True
    return bool(doc.cues("post_negation", end, min(s1, end + POST_WINDOW)))


def about_family(doc: Document, start: int) -> bool:
    """True when the mention is about a relative ("family history of ...", "mother had ...")."""
    if doc.section(start) == "family":
        return True
    s0, _ = doc.sentence(start)
    return bool(doc.cues("family", s0, start))


def asserted(doc: Document, hit: Hit) -> bool:
    """Neither negated nor about the family."""
    return not negated(doc, hit.start, hit.end) and not about_family(doc, hit.start)


def diagnosed(doc: Document, hit: Hit) -> bool:
    """Asserted, and not a screening or risk statement ("diabetes screening", "risk of stroke")."""
    screening = near_cue(doc, "not_diagnosis_before", hit, PRE_WINDOW, 0) or near_cue(
        doc, "not_diagnosis_after", hit, 0, POST_WINDOW // 2
    )
    return asserted(doc, hit) and not screening


def near_cue(doc: Document, cue: str, hit: Hit, before: int, after: int) -> bool:
    """A cue of this kind within the sentence, `before` chars before or `after` chars after the hit."""
    s0, s1 = doc.sentence(hit.start)
    return bool(
        doc.cues(cue, max(s0, hit.start - before), hit.start)
        or doc.cues(cue, hit.end, min(s1, hit.end + after))
    )


def in_sentence(doc: Document, cue: str, hit: Hit) -> bool:
    """A cue of this kind anywhere in the hit's sentence."""
    s0, s1 = doc.sentence(hit.start)
    return bool(doc.cues(cue, s0, s1))


def nearest(doc: Document, category: str, hit: Hit, window: int) -> Hit | None:
    """The hit of `category` closest to `hit` within its sentence and `window` characters."""
    s0, s1 = doc.sentence(hit.start)
    best, best_distance = None, window + 1
    for other in doc.within(category, max(s0, hit.start - window), min(s1, hit.end + window)):
        if other.key is None:
            continue
        distance = max(other.start - hit.end, hit.start - other.end, 0)
        if distance < best_distance:
            best, best_distance = other, distance
    return best
