"""The document-analysis pipeline: `workflow.py` orders the steps, `stages.py` does their work."""

from app.workflows.document_analysis.workflow import DocumentAnalysisInput, document_analysis, mark_document_failed

__all__ = ["DocumentAnalysisInput", "document_analysis", "mark_document_failed"]
