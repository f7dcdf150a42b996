"""The ops API (DESIGN 5): runs, events, retry/cancel, dead letters, usage. Ops token only.

Every route depends on `require_ops` at the router level: no token is 401, a patient token 403.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import func, select
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.auth.dependencies import require_ops
from app.db import utcnow
from app.dependencies import RuntimeDep, SessionDep, SessionsDep
from app.errors import ErrorBody, NotFound, error_responses
from app.ops import service
from app.ops.alerts import alert_stream
from app.ops.dependencies import OpsStateDep, QuotaDep
from app.ops.schemas import (
    CancelRead,
    DeadLetterList,
    DeadLetterRead,
    EventRead,
    ReplayRead,
    RetryRead,
    RunDetail,
    RunList,
    UsageRead,
)
from app.runtime.models import Event, WorkflowRun

router = APIRouter(
    prefix="/ops", tags=["ops"], dependencies=[Depends(require_ops)], responses=error_responses(400, 401, 403, 404, 409)
)
UPSTREAM = {502: {"model": ErrorBody, "description": "QStash (a dead-letter source) refused or did not answer"}}


@router.get("/runs")
async def list_runs(
    session: SessionDep,
    workflow: str | None = None,
    status: str | None = None,
    case_id: str | None = None,
    document_id: str | None = None,
    created_from: Annotated[datetime | None, Query(alias="from", description="created at or after (ISO 8601)")] = None,
    created_to: Annotated[datetime | None, Query(alias="to", description="created before (ISO 8601)")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 50,
) -> RunList:
    """Runs, newest first; filter by workflow, status, case, document and creation time."""
    return await service.list_runs(
        session,
        workflow=workflow,
        status=status,
        case_id=case_id,
        document_id=document_id,
        created_from=created_from,
        created_to=created_to,
        cursor=cursor,
        limit=limit,
    )


@router.get("/runs/{run_id}")
async def get_run(session: SessionDep, run_id: str) -> RunDetail:
    """The run, its ordered steps with each attempt, its children and parent, waits and events."""
    return await service.run_detail(session, run_id=run_id)


@router.post("/runs/{run_id}/retry")
async def retry_run(runtime: RuntimeDep, run_id: str) -> RetryRead:
    """Resume a failed run at the step that failed (completed steps are kept)."""
    run = await runtime.resume(run_id)
    return RetryRead(run_id=run.id, status=run.status, detail="resumed at the step that failed")


@router.post("/runs/{run_id}/cancel")
async def cancel_run(session: SessionDep, runtime: RuntimeDep, run_id: str) -> CancelRead:
    """Cancel the run and its children at their next step boundary."""
    if await session.get(WorkflowRun, run_id) is None:
        raise NotFound(f"no run {run_id}")
    # End this read before the runtime writes in a transaction of its own: on SQLite every
    # transaction holds the write lock (BEGIN IMMEDIATE), so the runtime would wait for this one.
    await session.rollback()
    cancelled = await runtime.cancel(run_id)
    detail = "cancelled" if cancelled else "the run had already finished"
    return CancelRead(run_id=run_id, cancelled=cancelled, detail=detail)


@router.get("/events")
async def list_events(
    session: SessionDep,
    workflow_id: str | None = None,
    case_id: str | None = None,
    document_id: str | None = None,
    after_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_EVENTS)] = 1000,
) -> list[EventRead]:
    """The events of a run (or a case, or a document), oldest first."""
    return await service.list_events(
        session, workflow_id=workflow_id, case_id=case_id, document_id=document_id, after_id=after_id, limit=limit
    )


@router.get("/dlq", responses=UPSTREAM)
async def list_dead_letters(
    ops: OpsStateDep,
    source: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> DeadLetterList:
    """Dead letters of every source (QStash's DLQ, webhook deliveries), newest first."""
    page = await ops.dead_letters.list(source=source, cursor=cursor, count=limit)
    items = [DeadLetterRead.model_validate(letter, from_attributes=True) for letter in page.items]
    return DeadLetterList(items=items, next_cursor=page.cursor)


@router.post("/dlq/{dead_letter_id}/replay", responses=UPSTREAM)
async def replay_dead_letter(ops: OpsStateDep, dead_letter_id: str) -> ReplayRead:
    """Send a dead letter again (`<source>:<id>`, as listed); a webhook delivery keeps its webhook-id."""
    message_id = await ops.dead_letters.replay(dead_letter_id)
    return ReplayRead(id=dead_letter_id, message_id=message_id)


@router.get("/alerts")
async def alerts(
    request: Request,
    sessions: SessionsDep,
    ops: OpsStateDep,
    last_event_id: Annotated[
        int | None, Query(description="resume after this event ID (or send Last-Event-ID)")
    ] = None,
) -> EventSourceResponse:
    """SSE stream of alerts (`alert.run_failed`, `alert.dead_letter`, `alert.stuck_run`,
    `alert.quota_warning`); `id:` is the event ID and `Last-Event-ID` resumes. Without either,
    it starts with the alerts written from now on. `EventSource` can pass `?access_token=`.
    """
    header = request.headers.get("last-event-id", "")
    after = int(header) if header.isdigit() else last_event_id
    if after is None:
        async with sessions() as session:
            after = await session.scalar(select(func.max(Event.id))) or 0

    async def messages() -> AsyncIterator[ServerSentEvent]:
        ops.sse_clients += 1
        try:
            async for alert in alert_stream(sessions, after, poll_s=ops.alerts_poll_s, stopping=lambda: False):
                yield ServerSentEvent(data=json.dumps(alert), event=alert["type"], id=str(alert["id"]))
        finally:
            ops.sse_clients -= 1

    return EventSourceResponse(messages(), ping=15)


@router.get("/usage")
async def usage(
    session: SessionDep, ops: OpsStateDep, quota: QuotaDep, days: Annotated[int, Query(ge=1, le=366)] = 14
) -> UsageRead:
    """QStash messages per workflow per day against the daily quota, and what inline continuation saved."""
    await ops.recorder.flush()
    return await service.usage_report(session, quota=quota, today=utcnow(), days=days)
