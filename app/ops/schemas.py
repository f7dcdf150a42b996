"""Request and response schemas of the ops API (DESIGN 5)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class EventRead(BaseModel):
    id: int
    type: str
    workflow_id: str | None
    case_id: str | None
    document_id: str | None
    payload: Any
    created_at: datetime


class RunSummary(BaseModel):
    id: str
    workflow: str
    status: str
    labels: dict[str, str]
    case_id: str | None
    document_id: str | None
    parent_run_id: str | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class RunList(BaseModel):
    items: list[RunSummary]
    next_cursor: str | None  # pass as `cursor` for the next (older) page; null at the end


class AttemptRead(BaseModel):
    attempt: int | None
    outcome: str  # completed | failed | running
    error: str | None = None
    duration_ms: float | None = None
    at: datetime | None = None


class StepRead(BaseModel):
    position: int
    name: str
    kind: str
    status: str
    attempts: int
    started_at: datetime
    finished_at: datetime | None
    duration_ms: float | None
    error: str | None
    error_type: str | None
    wake_at: datetime | None
    child_run_id: str | None
    attempt_history: list[AttemptRead]


class WaitRead(BaseModel):
    position: int
    step: str
    waits_for: str  # sleep | retry | event | child | call
    target: str | None  # the event ID, child run ID or called URL
    until: datetime | None


class RunDetail(RunSummary):
    payload: Any
    result: Any
    failure: Any
    parent: RunSummary | None
    children: list[RunSummary]
    steps: list[StepRead]
    waiting_for: list[WaitRead]
    events: list[EventRead]


class RetryRead(BaseModel):
    run_id: str
    status: str
    detail: str


class CancelRead(BaseModel):
    run_id: str
    cancelled: list[str]
    detail: str


class DeadLetterRead(BaseModel):
    id: str
    source: str
    url: str
    workflow_run_id: str | None
    response_status: int | None
    error: str | None
    body: str | None
    created_at: datetime | None


class DeadLetterList(BaseModel):
    items: list[DeadLetterRead]
    next_cursor: str | None


class ReplayRead(BaseModel):
    id: str
    message_id: str


class UsageDay(BaseModel):
    day: str
    messages: int
    by_workflow: dict[str, int]
    inline_steps: int
    saved_share: float  # inline steps / (messages + inline steps): messages inline continuation saved
    quota_share: float  # messages / daily quota
    cost: float  # messages * price per 100k / 100k


class UsageRead(BaseModel):
    daily_quota: int
    warn_ratio: float
    price_per_100k: float
    workflows: list[str]
    days: list[UsageDay]  # oldest first, one per day of the window (zeros included)
    total_messages: int
    total_inline_steps: int
    saved_share: float
    total_cost: float
