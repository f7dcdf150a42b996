"""Logging with the workflow run ID (and the step, attempt, case and document) on every line.

`workflow_id_var` is set by the runtime while it drives a run, `run_labels_var` to the run's
labels (its `case_id`, `document_id`), and `step_var`/`attempt_var` while a step attempt runs
(they follow the step into its worker thread). A log record factory copies them into every
record (`workflow_id`, `step`, `attempt`, `case_id`, `document_id`), whatever handler later
formats it. `LOG_FORMAT=json` writes one JSON object per line with those fields (the default
outside development); `text` writes the readable FORMAT below (the default in development).
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

workflow_id_var: ContextVar[str | None] = ContextVar("workflow_id", default=None)
run_labels_var: ContextVar[dict[str, str] | None] = ContextVar("run_labels", default=None)
step_var: ContextVar[str | None] = ContextVar("step", default=None)
attempt_var: ContextVar[int | None] = ContextVar("attempt", default=None)

FORMAT = "%(asctime)s %(levelname)s %(name)s [%(workflow_id)s] %(message)s"
CONTEXT_FIELDS = ("workflow_id", "step", "attempt", "case_id", "document_id")

_installed = False


def install_run_id_factory() -> None:
    """Give every log record the run's context attributes (idempotent)."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.workflow_id = workflow_id_var.get() or "-"
        labels = run_labels_var.get() or {}
        record.case_id = labels.get("case_id")
        record.document_id = labels.get("document_id")
        record.step = step_var.get()
        record.attempt = attempt_var.get()
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the run's context, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value not in (None, "-"):
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Log to stderr at `level`, as JSON lines (`fmt="json"`) or readable text."""
    install_run_id_factory()
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
