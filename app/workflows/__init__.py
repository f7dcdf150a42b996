"""The pipelines (DESIGN 4): one package per workflow, its workflow function beside its stages.

`default_workflows()` is what the app serves at `POST /workflows/<name>`.
"""

from __future__ import annotations

from app.runtime.registry import Workflow


def default_workflows() -> list[Workflow]:
    from app.workflows.document_analysis import document_analysis
    from app.workflows.provider_forwarding import provider_forwarding
    from app.workflows.scheduled_jobs import JOB_WORKFLOWS
    from app.workflows.webhook_delivery import webhook_delivery

    return [document_analysis, provider_forwarding, webhook_delivery, *JOB_WORKFLOWS]
