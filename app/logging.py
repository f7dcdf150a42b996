"""Logging with the workflow run ID on every line.

`workflow_id_var` is set by the runtime while it drives a run. A log record factory copies
it into every record as `workflow_id` (whatever handler later formats it), and the format
prints it, so every log line of a run carries the same `wfr_` ID as its events.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

workflow_id_var: ContextVar[str | None] = ContextVar("workflow_id", default=None)

FORMAT = "%(asctime)s %(levelname)s %(name)s [%(workflow_id)s] %(message)s"

_installed = False


def install_run_id_factory() -> None:
    """Give every log record a `workflow_id` attribute (idempotent)."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.workflow_id = workflow_id_var.get() or "-"
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


def configure_logging(level: str = "INFO") -> None:
    """Log to stderr in FORMAT at `level` (for `curaway serve`)."""
    install_run_id_factory()
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
