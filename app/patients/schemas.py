"""Request and response bodies of the patient routes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class PatientCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(
        max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", description="the patient's e-mail address"
    )


class PatientRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    email: str
    created_at: datetime
