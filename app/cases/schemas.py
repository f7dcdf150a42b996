"""Request and response bodies of the case routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class CaseCreate(BaseModel):
    patient_id: str = Field(min_length=1)
    procedure: str = Field(min_length=1, description="a procedure code from GET /procedures")


class CaseRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    patient_id: str
    procedure: str
    created_at: datetime


class RequirementItem(BaseModel):
    requirement: str
    code: str
    kind: str
    status: str
    evidence: list[dict[str, Any]]


class RequirementsRead(BaseModel):
    procedure: str
    procedure_name: str
    items: list[RequirementItem]
