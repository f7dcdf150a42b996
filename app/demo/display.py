"""The demo's terminal display: one line per document with a stage bar, and the checklist.

On a terminal the block of lines is redrawn in place with ANSI cursor movement; otherwise a
line is appended whenever a document's line changes.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import Any, TextIO

# The document-analysis progress events, in pipeline order (app/workflows/document_analysis/).
STAGES: tuple[str, ...] = (
    "document.uploaded",
    "document.upload_confirmed",
    "document.ocr_completed",
    "document.extraction_completed",
    "document.fhir_validated",
    "document.requirements_matched",
    "document.ehr_rebuilt",
    "document.analyzed",
)
STAGE_INDEX = {name: i + 1 for i, name in enumerate(STAGES)}
NEEDS_OCR = "document.needs_ocr"
FAILED = "document.analysis_failed"
BAR_WIDTH = len(STAGES)
FINAL_STATUS_EVENTS = {"analyzed": "document.analyzed", "needs_ocr": NEEDS_OCR, "failed": FAILED}
SNIPPET_CHARS = 80


@dataclass
class DocumentLine:
    """What the demo knows about one file of the directory."""

    name: str
    document_id: str | None = None
    stage: int = 0  # index into STAGES (1-based) of the furthest stage seen
    state: str = "waiting"  # waiting, uploading, processing, refused, analyzed, needs_ocr, failed
    reason: str = ""

    @property
    def accepted(self) -> bool:
        return self.document_id is not None

    @property
    def final(self) -> bool:
        return self.state in {"refused", "analyzed", "needs_ocr", "failed"}

    def render(self, name_width: int) -> str:
        bar = "#" * self.stage + "-" * (BAR_WIDTH - self.stage)
        head = f"{self.name:<{name_width}}  [{bar}] {self.stage}/{BAR_WIDTH}"
        if self.state == "waiting":
            return f"{self.name:<{name_width}}  [{'-' * BAR_WIDTH}] waiting"
        if self.state == "uploading":
            return f"{self.name:<{name_width}}  [{'-' * BAR_WIDTH}] uploading"
        if self.state == "refused":
            return f"{self.name:<{name_width}}  [{'x' * BAR_WIDTH}] refused: {self.reason}"
        if self.state == "analyzed":
            return f"{head} analyzed"
        if self.state == "needs_ocr":
            return f"{head} needs OCR: {self.reason}"
        if self.state == "failed":
            return f"{head} failed: {self.reason}"
        label = STAGES[self.stage - 1].removeprefix("document.").replace("_", " ") if self.stage else "accepted"
        return f"{head} {label}"


@dataclass
class Display:
    """One line per document: redrawn in place on a terminal, appended otherwise."""

    out: TextIO
    tty: bool
    lines: list[DocumentLine] = field(default_factory=list)
    _drawn: int = 0
    _last: dict[str, str] = field(default_factory=dict)

    @property
    def name_width(self) -> int:
        return max((len(line.name) for line in self.lines), default=0)

    def refresh(self, *, final: bool = False) -> None:
        """Show the lines; on a terminal each is cut to the width (a wrapped line would break the
        redraw), except in the `final` drawing, which is never redrawn and shows reasons whole."""
        rendered = [line.render(self.name_width) for line in self.lines]
        if self.tty:
            columns = max(shutil.get_terminal_size((100, 24)).columns - 1, 20)
            buffer = f"\x1b[{self._drawn}F" if self._drawn else ""  # back to the block's first line
            for text in rendered:
                buffer += "\x1b[2K" + (text if final else text[:columns]) + "\n"
            self.out.write(buffer)
            self._drawn = len(rendered)
        else:
            for line, text in zip(self.lines, rendered, strict=True):
                if self._last.get(line.name) != text and line.state not in {"waiting", "uploading"}:
                    self._last[line.name] = text
                    self.out.write(text + "\n")
        self.out.flush()

    def say(self, text: str = "") -> None:
        """A line outside the block (before it is drawn, or after it is done)."""
        self.out.write(text + "\n")
        self.out.flush()


def apply_event(line: DocumentLine, event: dict[str, Any]) -> bool:
    """Move the line forward with one event; False when it changes nothing."""
    if line.final:
        return False
    kind = event.get("type") or ""
    payload = event.get("payload") or {}
    if kind == "document.analyzed":
        line.stage, line.state = BAR_WIDTH, "analyzed"
    elif kind == NEEDS_OCR:
        line.state, line.reason = "needs_ocr", str(payload.get("reason") or "no text layer")
    elif kind == FAILED:
        line.state, line.reason = "failed", str(payload.get("reason") or "unknown reason")
    elif kind in STAGE_INDEX and STAGE_INDEX[kind] > line.stage:
        line.stage = STAGE_INDEX[kind]
    else:
        return False
    return True


def summary_line(lines: list[DocumentLine]) -> str:
    counts: dict[str, int] = {}
    for line in lines:
        counts[line.state] = counts.get(line.state, 0) + 1
    labels = {"analyzed": "analyzed", "needs_ocr": "need OCR", "failed": "failed", "refused": "refused"}
    parts = [f"{counts[state]} {label}" for state, label in labels.items() if counts.get(state)]
    return f"{len(lines)} document(s): " + ", ".join(parts)


def checklist_lines(checklist: dict[str, Any], names: dict[str, str]) -> list[str]:
    """The requirement checklist as text: satisfied ones with their best evidence, then missing ones."""
    items = checklist.get("items") or []
    satisfied = [i for i in items if i.get("status") == "satisfied"]
    missing = [i for i in items if i.get("status") != "satisfied"]
    title = checklist.get("procedure_name") or checklist.get("procedure")
    lines = [f"Requirements for {title} ({checklist.get('procedure')}): {len(satisfied)} of {len(items)} satisfied"]
    for item in satisfied:
        evidence = sorted(item.get("evidence") or [], key=lambda e: -float(e.get("score") or 0))
        if evidence:
            best = evidence[0]
            source = names.get(best.get("document_id", ""), best.get("document_id", "?"))
            score = f", score {float(best['score']):.2f}" if best.get("score") is not None else ""
            lines.append(f'  [x] {item["requirement"]}: "{_shorten(str(best.get("snippet", "")))}" ({source}{score})')
        else:
            lines.append(f"  [x] {item['requirement']}")
    for item in missing:
        lines.append(f"  [ ] {item['requirement']}: missing")
    return lines


def _shorten(text: str, limit: int = SNIPPET_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."
