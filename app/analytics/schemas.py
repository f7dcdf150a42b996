"""Schemas of `GET /ops/analytics`."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field


class AnalyticsDay(BaseModel):
    day: date
    cases: int = 0
    documents: dict[str, int] = Field(default_factory=dict)  # by status
    forwardings: dict[str, int] = Field(default_factory=dict)  # by outcome (when forwardings exist)


class AnalyticsRead(BaseModel):
    days: list[AnalyticsDay]
