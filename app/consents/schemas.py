"""Consent schemas."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class ConsentCreate(BaseModel):
    provider_ids: list[str] = Field(min_length=1, max_length=100)
    expires_at: datetime = Field(description="timezone-aware (e.g. 2027-01-01T00:00:00Z), in the future")


class ConsentRead(BaseModel):
    id: str
    case_id: str
    provider_id: str
    status: str  # active | revoked | expired
    granted_by: str
    granted_at: datetime
    expires_at: datetime
    revoked_by: str | None
    revoked_at: datetime | None


class ConsentList(BaseModel):
    items: list[ConsentRead]
