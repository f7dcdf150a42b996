"""Schemas of the rates routes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class RatesRead(BaseModel):
    base: str
    fetched_at: datetime
    rates: dict[str, float]
    last_failure: str | None = None  # why the most recent refresh kept these older rates


class QuoteRead(BaseModel):
    amount: float
    source: str
    target: str
    converted: float
    fetched_at: datetime
