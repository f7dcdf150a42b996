"""The pipelines (DESIGN 4): one package per workflow, its workflow function beside its stages.

`default_workflows()` is what the app serves at `POST /workflows/<name>`.
"""

from __future__ import annotations

from app.runtime.registry import Workflow


def default_workflows() -> list[Workflow]:
    from app.workflows.document_analysis import document_analysis
    from app.workflows.scheduled_jobs import JOB_WORKFLOWS

    return [document_analysis, *JOB_WORKFLOWS]
