"""The offline Clinical Context Agent: deterministic, no network, a few milliseconds per document.

Everything clinical it knows comes from `vocabulary.json` and `context.json`; this module only
wires the readers together. The same input always gives the same `Extraction`, every fact with its
provenance (page, span, rule).
"""

from __future__ import annotations

from app.compute import run_cpu
from app.extraction.conditions import extract_conditions
from app.extraction.document import Document
from app.extraction.labs import extract_labs
from app.extraction.medications import extract_allergies, extract_medications
from app.extraction.schemas import Extraction
from app.extraction.studies import extract_studies, recommended_procedure_hit
from app.extraction.vocabulary import Vocabulary, default_vocabulary

LAB_REPORT_MIN_RESULTS = 5
LAB_LINE_SHARE = 0.4
_CLINICAL_SECTIONS = {"diagnoses", "assessment", "plan", "pmh", "medications", "allergies"}


class OfflineExtractor:
    """Vocabulary-driven extraction; implements `ClinicalContextAgent`."""

    def __init__(self, vocabulary: Vocabulary | None = None) -> None:
        self._vocabulary = vocabulary or default_vocabulary()

    async def extract(self, pages: list[str]) -> Extraction:
        """Extract the clinical content of the pages' text, in a compute thread (it is CPU work:
        on the event loop it would stall every request and the run's lease heartbeat)."""
        return await run_cpu(extract_text, pages, self._vocabulary)


def extract_text(pages: list[str], vocabulary: Vocabulary | None = None) -> Extraction:
    """The pure extraction behind `OfflineExtractor` (no I/O, CPU only)."""
    vocabulary = vocabulary or default_vocabulary()
    doc = Document.build(pages, vocabulary)
    labs = extract_labs(doc, vocabulary)
    procedure = recommended_procedure_hit(doc)
    medications = extract_medications(doc, vocabulary)
    lab_report = is_lab_report(doc, vocabulary, len(labs))
    drugs = frozenset(m.name for m in medications)
    return Extraction(
        conditions=extract_conditions(doc, vocabulary, lab_report=lab_report, drugs=drugs),
        medications=medications,
        allergies=extract_allergies(doc, vocabulary),
        labs=labs,
        studies=extract_studies(doc, vocabulary),
        recommended_procedure=procedure.key if procedure else None,
        procedure_provenance=doc.provenance(procedure.start, procedure.end, "recommendation") if procedure else None,
    )


def is_lab_report(doc: Document, vocabulary: Vocabulary, lab_results: int) -> bool:
    """A laboratory report: titled as one, or mostly result rows and no clinical sections."""
    if any(title in doc.title for title in vocabulary.lab_report_titles):
        return True
    if lab_results < LAB_REPORT_MIN_RESULTS or {s.kind for s in doc.sections} & _CLINICAL_SECTIONS:
        return False
    line_starts = {doc.text.rfind("\n", 0, hit.start) for hit in doc.found("lab")}
    lines = [line for line in doc.text.split("\n") if line.strip()]
    return len(line_starts) >= LAB_LINE_SHARE * len(lines)
