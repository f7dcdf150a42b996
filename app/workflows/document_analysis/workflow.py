"""The document-analysis pipeline (DESIGN 4): from an uploaded PDF to the case's checklist and EHR.

confirm-upload -> ocr -> clinical-extract -> fhir-validate -> embedding-match -> ehr-rebuild
-> sse-notify. Every stage (`stages.py`) commits its output with one progress event for the
patient; a document without a usable text layer (and no OCR) ends `needs_ocr`; any failure that
the retries do not cure ends the document `failed` with its reason (`on_failure`), so no
document stays "analysing" forever.

Running runs replay by step name and position: never rename, reorder or remove a step here.
"""

from __future__ import annotations

from pydantic import BaseModel

from app.runtime.context import FailureContext, WorkflowContext
from app.runtime.registry import workflow
from app.workflows.deps import PipelineDeps
from app.workflows.document_analysis import stages


class DocumentAnalysisInput(BaseModel):
    document_id: str
    case_id: str


async def mark_document_failed(failure: FailureContext) -> None:
    payload = DocumentAnalysisInput.model_validate(failure.payload)
    await stages.mark_failed(failure.deps, payload.document_id, _patient_reason(failure))


def _patient_reason(failure: FailureContext) -> str:
    """`<message> (stage: ocr)`; an unexpected error keeps its type in front of the message."""
    expected = failure.error_type in ("NonRetryableError", "StepTimeoutError")
    detail = failure.message if expected else f"{failure.error_type}: {failure.message}"
    return f"{detail} (stage: {failure.step})" if failure.step else detail


@workflow("document-analysis", on_failure=mark_document_failed)
async def document_analysis(ctx: WorkflowContext, payload: DocumentAnalysisInput) -> dict[str, object]:
    deps: PipelineDeps = ctx.deps
    document_id, case_id = payload.document_id, payload.case_id
    await ctx.run("confirm-upload", stages.confirm_upload, deps, document_id)
    pages = await ctx.run("ocr", stages.read_pages, deps, document_id, timeout=300)
    if pages["needs_ocr"]:
        return {"status": "needs_ocr", "reason": pages["reason"]}
    extracted = await ctx.run("clinical-extract", stages.extract, deps, document_id, timeout=180)
    await ctx.run("fhir-validate", stages.validate_fhir, deps, document_id)
    matched = await ctx.run("embedding-match", stages.match_case, deps, case_id, document_id, timeout=120)
    await ctx.run("ehr-rebuild", stages.rebuild_ehr, deps, case_id, document_id)
    await ctx.run("sse-notify", stages.finish, deps, document_id)
    return {"status": "analyzed", "extraction": extracted, "requirements": matched}
