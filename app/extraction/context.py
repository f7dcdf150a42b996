"""Whether a mention is asserted about the patient now: ConText (Harkema et al. 2009) on cue hits.

A mention is modified by a kind of context (negated, resolved, hypothetical, family, prophylaxis)
when a "before" trigger of that kind stands up to `PRE_WINDOW` characters before it, or an "after"
trigger up to `POST_WINDOW` characters after it, in the same sentence and with no terminator
("but", "aber", "pero", "ama" ...) between trigger and mention. A treatment introduced after the
trigger ends its scope too ("sans crise depuis 3 ans sous lamotrigine", "no seizures since 2019,
treated with levetiracetam": the seizures are negated, not the drug). Pseudo-triggers ("past
medical history", "no change") are not triggers, nor is a trigger word inside a condition's own
name ("migraine sans aura", "Migräne ohne Aura" name a condition and negate nothing after them),
nor an "after" trigger beyond a colon and another finding ("Endoskopi: özofajitis yok" negates the
oesophagitis, not the endoscopy; "Asthma: excluded" still negates the asthma).
The per-language trigger lists live in `context.json` (negation and family cues also in
`vocabulary.json`). A condition is a current diagnosis when no kind modifies it, it is not a
screening or risk statement, and it is not in a family-history or differential-diagnosis section.
"""

from __future__ import annotations

from app.extraction.document import Document
from app.extraction.vocabulary import CONTEXT_KINDS, Hit, trigger_cue

PRE_WINDOW = 60
POST_WINDOW = 40
NOT_CURRENT_SECTIONS = frozenset({"family", "differential"})


def modified(doc: Document, kind: str, start: int, end: int) -> bool:
    """True when a trigger of `kind` has the mention at [start, end) in its scope."""
    s0, s1 = doc.sentence(start)
    for cue in doc.cues(trigger_cue(kind, "before"), max(s0, start - PRE_WINDOW), start):
        if not doc.cues("scope_end", cue.end, start) and not _names_a_condition(doc, cue):
            return True
    for cue in doc.cues(trigger_cue(kind, "after"), end, min(s1, end + POST_WINDOW)):
        if _finding_after_a_label(doc, end, cue.start):
            break  # "Endoskopi: ozofajitis yok": the trigger is about the finding after the label
        if not doc.cues("scope_end", end, cue.start) and not _names_a_condition(doc, cue):
            return True
    return False


def _finding_after_a_label(doc: Document, end: int, cue_start: int) -> bool:
    """A colon, then a condition, between the mention and an "after" trigger ("Asthma: excluded" is
    still about the asthma)."""
    colon = doc.text.find(":", end, cue_start)
    return colon >= 0 and any(doc.within(category, colon, cue_start) for category in ("condition", "site_condition"))


def _names_a_condition(doc: Document, cue: Hit) -> bool:
    """A trigger word that is part of a condition's name ("migraine sans aura", "ohne Aura")."""
    return any(h.start < cue.start or cue.end < h.end for h in _covering(doc, cue))


def _covering(doc: Document, cue: Hit) -> list[Hit]:
    return [h for h in doc.found("condition") if h.start <= cue.start and cue.end <= h.end]


def context_of(doc: Document, start: int, end: int) -> str | None:
    """The first kind of context that modifies the mention, or None when it is asserted now."""
    return next((kind for kind in CONTEXT_KINDS if modified(doc, kind, start, end)), None)


def negated(doc: Document, start: int, end: int) -> bool:
    """True when the mention at [start, end) is negated ("no evidence of diabetes", "NKDA")."""
    return modified(doc, "negated", start, end)


def about_family(doc: Document, start: int) -> bool:
    """True when the mention is about a relative ("family history of ...", "mother had ...")."""
    if doc.section(start) == "family":
        return True
    s0, s1 = doc.sentence(start)
    return bool(doc.cues("family", s0, start) or doc.cues("family_after", start, s1))


def asserted(doc: Document, hit: Hit) -> bool:
    """Neither negated nor about the family."""
    return not negated(doc, hit.start, hit.end) and not about_family(doc, hit.start)


def diagnosed(doc: Document, hit: Hit) -> bool:
    """A current diagnosis: no context modifies it, not a screening or risk statement, not in a
    family-history or differential section."""
    screening = near_cue(doc, "not_diagnosis_before", hit, PRE_WINDOW, 0) or near_cue(
        doc, "not_diagnosis_after", hit, 0, POST_WINDOW // 2
    )
    if screening or doc.section(hit.start) in NOT_CURRENT_SECTIONS or about_family(doc, hit.start):
        return False
    return context_of(doc, hit.start, hit.end) is None


def near_cue(doc: Document, cue: str, hit: Hit, before: int, after: int) -> bool:
    """A cue of this kind within the sentence, `before` chars before or `after` chars after the hit."""
    s0, s1 = doc.sentence(hit.start)
    return bool(
        doc.cues(cue, max(s0, hit.start - before), hit.start) or doc.cues(cue, hit.end, min(s1, hit.end + after))
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
