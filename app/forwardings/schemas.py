"""Forwarding schemas (DESIGN 5)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class ForwardingCreate(BaseModel):
    provider_ids: list[str] = Field(min_length=1, max_length=50)


class ForwardingAccepted(BaseModel):
    forwarding_id: str
    workflow_run_id: str


class ProviderOutcome(BaseModel):
    provider_id: str
    status: str  # pending | delivered | dead_lettered | skipped_no_consent
    attempts: int
    last_status: int | None
    reason: str | None = None
    delivery_id: str


class ForwardingRead(BaseModel):
    id: str
    case_id: str
    status: str  # running | completed
    workflow_run_id: str | None
    created_at: datetime
    finished_at: datetime | None
    failure_reason: str | None = None
    providers: list[ProviderOutcome]
