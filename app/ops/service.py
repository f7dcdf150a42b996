"""Read models of runs for ops: find runs, one run in full, a run's (or case's) events, usage.

Services take the session first and keyword-only arguments after it; they only read. Runs are
found by their labels (`workflow_run_labels`: `case_id`, `document_id`) with one indexed join.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import BadRequest, NotFound
from app.ops.schemas import (
    AttemptRead,
    EventRead,
    RunDetail,
    RunList,
    RunSummary,
    StepRead,
    UsageDay,
    UsageRead,
    WaitRead,
)
from app.ops.usage import Quota, first_day, usage_rows
from app.runtime.models import (
    ON_FAILURE_POSITION,
    Event,
    RunStatus,
    StepKind,
    StepStatus,
    WorkflowRun,
    WorkflowRunLabel,
    WorkflowStep,
    WorkflowWaiter,
)

MAX_PAGE = 200
MAX_EVENTS = 10_000


def encode_cursor(run: WorkflowRun) -> str:
    raw = json.dumps([run.created_at.isoformat(), run.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, run_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(created), str(run_id)
    except (ValueError, TypeError) as exc:
        raise BadRequest("invalid cursor: pass the next_cursor of a previous page unchanged") from exc


def summary(run: WorkflowRun) -> RunSummary:
    labels = dict(run.labels or {})
    return RunSummary(
        id=run.id,
        workflow=run.workflow,
        status=run.status,
        labels=labels,
        case_id=labels.get("case_id"),
        document_id=labels.get("document_id"),
        parent_run_id=run.parent_run_id,
        error=run.error,
        created_at=run.created_at,
        updated_at=run.updated_at,
        finished_at=run.finished_at,
    )


async def list_runs(
    session: AsyncSession,
    *,
    workflow: str | None = None,
    status: str | None = None,
    case_id: str | None = None,
    document_id: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> RunList:
    """Runs newest first, filtered; `next_cursor` continues with older runs."""
    if status and status not in {s.value for s in RunStatus}:
        raise BadRequest(f"unknown status {status!r}; use one of {', '.join(s.value for s in RunStatus)}")
    created_from, created_to = _utc(created_from), _utc(created_to)
    query = select(WorkflowRun)
    for key, value in (("case_id", case_id), ("document_id", document_id)):
        if value is not None:
            label = select(WorkflowRunLabel.run_id).where(WorkflowRunLabel.key == key, WorkflowRunLabel.value == value)
            query = query.where(WorkflowRun.id.in_(label))
    if workflow:
        query = query.where(WorkflowRun.workflow == workflow)
    if status:
        query = query.where(WorkflowRun.status == status)
    if created_from:
        query = query.where(WorkflowRun.created_at >= created_from)
    if created_to:
        query = query.where(WorkflowRun.created_at < created_to)
    if cursor:
        at, run_id = decode_cursor(cursor)
        older = or_(WorkflowRun.created_at < at, and_(WorkflowRun.created_at == at, WorkflowRun.id < run_id))
        query = query.where(older)
    query = query.order_by(WorkflowRun.created_at.desc(), WorkflowRun.id.desc()).limit(limit + 1)
    runs = list(await session.scalars(query))
    more = len(runs) > limit
    runs = runs[:limit]
    return RunList(items=[summary(r) for r in runs], next_cursor=encode_cursor(runs[-1]) if more and runs else None)


def _utc(at: datetime | None) -> datetime | None:
    """A time without a zone is UTC (as the console's and the CLI's inputs are)."""
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


def event_read(event: Event) -> EventRead:
    return EventRead(
        id=event.id,
        type=event.type,
        workflow_id=event.workflow_id,
        case_id=event.case_id,
        document_id=event.document_id,
        payload=event.payload,
        created_at=event.created_at,
    )


async def list_events(
    session: AsyncSession,
    *,
    workflow_id: str | None = None,
    case_id: str | None = None,
    document_id: str | None = None,
    after_id: int | None = None,
    limit: int = 1000,
) -> list[EventRead]:
    """The events of a run (or of a case, or a document), oldest first."""
    keys = [(Event.workflow_id, workflow_id), (Event.case_id, case_id), (Event.document_id, document_id)]
    chosen = [(column, value) for column, value in keys if value is not None]
    if not chosen:
        raise BadRequest("give one of workflow_id, case_id or document_id")
    query = select(Event).order_by(Event.id).limit(limit)
    for column, value in chosen:
        query = query.where(column == value)
    if after_id is not None:
        query = query.where(Event.id > after_id)
    return [event_read(e) for e in await session.scalars(query)]


async def run_detail(session: AsyncSession, *, run_id: str) -> RunDetail:
    run = await session.get(WorkflowRun, run_id)
    if run is None:
        raise NotFound(f"no run {run_id}; find runs with GET /ops/runs")
    steps = list(await session.scalars(select(WorkflowStep).where(WorkflowStep.run_id == run_id)))
    steps.sort(key=lambda s: (s.position == ON_FAILURE_POSITION, s.position))
    events = list(await session.scalars(select(Event).where(Event.workflow_id == run_id).order_by(Event.id)))
    waiters = {
        w.position: w for w in await session.scalars(select(WorkflowWaiter).where(WorkflowWaiter.run_id == run_id))
    }
    children = list(await session.scalars(select(WorkflowRun).where(WorkflowRun.parent_run_id == run_id)))
    child_ids = {c.id for c in children}
    reads = [_step_read(step, events) for step in steps]
    detached = [r.child_run_id for r in reads if r.child_run_id and r.child_run_id not in child_ids]
    if detached:  # started with wait=False: not linked by parent_run_id
        children += list(await session.scalars(select(WorkflowRun).where(WorkflowRun.id.in_(detached))))
    children.sort(key=lambda c: (c.created_at, c.id))
    parent = await session.get(WorkflowRun, run.parent_run_id) if run.parent_run_id else None
    return RunDetail(
        **summary(run).model_dump(),
        payload=run.payload,
        result=run.result,
        failure=run.failure,
        parent=summary(parent) if parent else None,
        children=[summary(c) for c in children],
        steps=reads,
        waiting_for=[w for w in (_wait(step, waiters) for step in steps) if w is not None],
        events=[event_read(e) for e in events],
    )


def _step_read(step: WorkflowStep, events: list[Event]) -> StepRead:
    finished = step.finished_at
    duration = (finished - step.started_at).total_seconds() * 1000 if finished else None
    return StepRead(
        position=step.position,
        name=step.name,
        kind=step.kind,
        status=step.status,
        attempts=step.attempts,
        started_at=step.started_at,
        finished_at=finished,
        duration_ms=None if duration is None else round(duration, 3),
        error=step.error,
        error_type=step.error_type,
        wake_at=step.wake_at,
        child_run_id=_child_of(step, events),
        attempt_history=_attempts(step, events),
    )


def _child_of(step: WorkflowStep, events: list[Event]) -> str | None:
    if step.kind != StepKind.INVOKE:
        return None
    if isinstance(step.result, dict) and isinstance(step.result.get("run_id"), str):
        return step.result["run_id"]
    for event in events:
        payload = event.payload if isinstance(event.payload, dict) else {}
        if payload.get("position") == step.position and payload.get("child_run_id"):
            return str(payload["child_run_id"])
    return None


def _attempts(step: WorkflowStep, events: list[Event]) -> list[AttemptRead]:
    """Each attempt's outcome from the step's `step.failed` / `step.completed` events."""
    history: list[AttemptRead] = []
    for event in events:
        payload: dict[str, Any] = event.payload if isinstance(event.payload, dict) else {}
        if payload.get("position") != step.position or event.type not in ("step.failed", "step.completed"):
            continue
        outcome = "completed" if event.type == "step.completed" else "failed"
        history.append(
            AttemptRead(
                attempt=payload.get("attempt"),
                outcome=outcome,
                error=payload.get("error"),
                duration_ms=payload.get("duration_ms"),
                at=event.created_at,
            )
        )
    if step.status == StepStatus.RUNNING:
        history.append(AttemptRead(attempt=step.attempts, outcome="running"))
    return history


def _wait(step: WorkflowStep, waiters: dict[int, WorkflowWaiter]) -> WaitRead | None:
    base = {"position": step.position, "step": step.name}
    if step.status == StepStatus.RETRY_SCHEDULED:
        return WaitRead(**base, waits_for="retry", target=None, until=step.wake_at)
    if step.status == StepStatus.SLEEPING:
        return WaitRead(**base, waits_for="sleep", target=None, until=step.wake_at)
    if step.status == StepStatus.CALLING:
        return WaitRead(**base, waits_for="call", target=None, until=None)
    if step.status != StepStatus.WAITING:
        return None
    waiter = waiters.get(step.position)
    if waiter is not None:
        return WaitRead(**base, waits_for="event", target=waiter.event_id, until=waiter.deadline)
    return WaitRead(**base, waits_for="child", target=None, until=None)


async def usage_report(session: AsyncSession, *, quota: Quota, today: datetime, days: int = 14) -> UsageRead:
    """Messages per workflow per day for the last `days` days (today included), against the quota."""
    since = first_day(today, days)
    rows = await usage_rows(session, since=since)
    by_day: dict[str, dict[str, tuple[int, int]]] = {}
    for row in rows:
        by_day.setdefault(row.day, {})[row.workflow] = (int(row.messages), int(row.inline_steps))
    workflows = sorted({row.workflow for row in rows})
    start = datetime.fromisoformat(since).date()
    out: list[UsageDay] = []
    for offset in range(days):
        day = start.toordinal() + offset
        key = type(start).fromordinal(day).isoformat()
        counts = by_day.get(key, {})
        messages = sum(m for m, _ in counts.values())
        inline = sum(i for _, i in counts.values())
        out.append(
            UsageDay(
                day=key,
                messages=messages,
                by_workflow={w: m for w, (m, _) in counts.items()},
                inline_steps=inline,
                saved_share=_share(inline, messages + inline),
                quota_share=_share(messages, quota.daily),
                cost=round(messages * quota.price_per_100k / 100_000, 6),
            )
        )
    total, total_inline = sum(d.messages for d in out), sum(d.inline_steps for d in out)
    return UsageRead(
        daily_quota=quota.daily,
        warn_ratio=quota.warn_ratio,
        price_per_100k=quota.price_per_100k,
        workflows=workflows,
        days=out,
        total_messages=total,
        total_inline_steps=total_inline,
        saved_share=_share(total_inline, total + total_inline),
        total_cost=round(total * quota.price_per_100k / 100_000, 6),
    )


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0
