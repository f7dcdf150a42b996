"""Request and response bodies of the document routes (DESIGN 5)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class DocumentAccepted(BaseModel):
    document_id: str
    status: str
    workflow_run_id: str


class DocumentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    case_id: str
    filename: str
    status: str
    failure_reason: str | None
    page_count: int | None
    extraction: dict[str, Any] | None
    issues: list[dict[str, Any]]
    workflow_run_id: str | None
