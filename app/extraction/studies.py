"""Studies (investigations done) and the procedure the document recommends.

Only studies that were done count ("echo pending", "MRI requested" do not). Named studies come from
the vocabulary ("Transthoracic echocardiogram", "12-lead ECG",
"Koronarangiographie"). Imaging is a modality plus the body site nearest to it in its sentence:
"MRI right knee" -> "mri knee", "pelvic X-ray" -> "pelvic x-ray". A modality without a site in its
sentence ("correlated radiograph", "MAGNETIC RESONANCE IMAGING REPORT") takes the document's imaging
site (the first site named next to a modality); one- or two-letter abbreviations ("CT", "MR") need
their own site, as they also abbreviate other things.

A procedure is historical in a history section, next to a historical cue ("s/p", "underwent"), or
with a year next to it and no recommendation in its sentence ("PCI en 2020").

The recommended procedure is the asserted, non-historical procedure mention with the strongest
recommendation evidence: a cue in its sentence ("recommends", "candidate for", "se recomienda",
"empfohlen", "önerilir") and a plan/assessment section; ties go to the earliest mention.
"""

from __future__ import annotations

import re

from app.extraction.context import asserted, in_sentence, near_cue, nearest
from app.extraction.document import Document
from app.extraction.schemas import Study
from app.extraction.vocabulary import Hit, Vocabulary

SITE_WINDOW = 40
HISTORY_BEFORE = 40
HISTORY_AFTER = 25
NOT_DONE_WINDOW = 30
YEAR_AFTER = 40
YEAR_BEFORE = 12
_YEAR = re.compile(r"(?<![\d/.-])(?:19[5-9]\d|20[0-4]\d)(?![\d/.-]?\d)")
_HISTORY_SECTIONS = {"pmh", "procedures", "family"}
_PLAN_SECTIONS = {"plan", "assessment"}


def extract_studies(doc: Document, vocabulary: Vocabulary) -> list[Study]:
    """Studies in document order, one per canonical name."""
    named = [(h.start, h.key or "", h.end, "vocabulary-term") for h in doc.found("study") if _done(doc, h)]
    spans = [(h.start, h.end) for h in doc.found("study")]
    imaging = [h for h in doc.found("modality") if not _overlaps(h, spans) and _done(doc, h)]
    sited = [(h, _site_hit(doc, h)) for h in imaging]
    doc_site = next((site.key.rstrip("*") for _, site in sited if site and site.key), None)
    found = named + [
        (
            min(h.start, site.start if site else h.start),
            _imaging_name(vocabulary, h.key or "", _key(site) or doc_site),
            max(h.end, site.end if site else h.end),
            "imaging-site" if site else "imaging-document-site",
        )
        for h, site in sited
        if site or h.end - h.start > 2
    ]
    studies: dict[str, Study] = {}
    for start, name, end, rule in sorted(found):
        if name:
            studies.setdefault(name, Study(name=name, provenance=doc.provenance(start, end, rule)))
    return list(studies.values())


def recommended_procedure(doc: Document) -> str | None:
    """The procedure the document recommends, or None."""
    hit = recommended_procedure_hit(doc)
    return hit.key if hit else None


def recommended_procedure_hit(doc: Document) -> Hit | None:
    """The mention of the procedure the document recommends: in a recommendation, else a plan."""
    best: tuple[int, int, Hit] | None = None
    for hit in doc.found("procedure"):
        if not asserted(doc, hit) or historical(doc, hit):
            continue
        score = 2 * in_sentence(doc, "recommendation", hit) + (doc.section(hit.start) in _PLAN_SECTIONS)
        candidate = (-score, hit.start, hit)
        best = min(best, candidate) if best else candidate
    return best[2] if best else None


def _done(doc: Document, hit: Hit) -> bool:
    """A study that was performed: asserted, and not pending, requested or planned."""
    pending = near_cue(doc, "not_done_before", hit, NOT_DONE_WINDOW, 0) or near_cue(
        doc, "not_done_after", hit, 0, NOT_DONE_WINDOW
    )
    return asserted(doc, hit) and not pending


def historical(doc: Document, hit: Hit) -> bool:
    """A procedure done in the past: in a history section, or next to a historical cue."""
    if doc.section(hit.start) in _HISTORY_SECTIONS and not in_sentence(doc, "recommendation", hit):
        return True
    before = near_cue(doc, "historical", hit, HISTORY_BEFORE, 0)
    return before or near_cue(doc, "historical_after", hit, 0, HISTORY_AFTER) or _dated(doc, hit)


def _dated(doc: Document, hit: Hit) -> bool:
    """A procedure with a year next to it and no recommendation in its sentence was done then
    ("angioplastie coronaire ... en 2020", "CABG 2015", "2019'da TKA")."""
    if in_sentence(doc, "recommendation", hit):
        return False
    s0, s1 = doc.sentence(hit.start)
    after = doc.text[hit.end : min(s1, hit.end + YEAR_AFTER)]
    before = doc.text[max(s0, hit.start - YEAR_BEFORE) : hit.start]
    return bool(_YEAR.search(after) or _YEAR.search(before))


def _site_hit(doc: Document, hit: Hit) -> Hit | None:
    site = nearest(doc, "site", hit, SITE_WINDOW)
    return site if site and site.key else None


def _key(site: Hit | None) -> str | None:
    return site.key.rstrip("*") if site and site.key else None


def _imaging_name(vocabulary: Vocabulary, modality: str, site: str | None) -> str:
    if site is None:
        return modality
    override = vocabulary.overrides.get(modality, {}).get(site)
    label = vocabulary.site_labels.get(site, site)
    return override or vocabulary.modalities[modality].template.format(site=label)


def _overlaps(hit: Hit, spans: list[tuple[int, int]]) -> bool:
    return any(start < hit.end and hit.start < end for start, end in spans)
