"""The tick endpoint of cron schedules: `POST /schedules/<name>` starts one run per tick.

QStash (or the embedded server) delivers each tick of a schedule synced by
`app.runtime.schedules.sync_schedules`, signed; the request is verified like a workflow
delivery (401 and no change otherwise). Then, with `Schedule` looked up by name among the
app's declared schedules (`app.state.schedules`; 404 when unknown):

- the tick time is the embedded server's `Upstash-Schedule-Tick` header (unix seconds) when
  present, else the most recent fire time of the declared cron at or before now (plus
  `CLOCK_SKEW`, for a tick delivered a moment early);
- the run ID is `derived_run_id("schedule", name, <tick, ISO 8601 UTC>)`, so a duplicated
  delivery of a tick finds its run and starts nothing;
- in one transaction, serialised per schedule (Postgres: `pg_advisory_xact_lock`; SQLite:
  `BEGIN IMMEDIATE` already serialises writers), if a run of this schedule is unfinished the
  tick is skipped and a `schedule.skipped` event is recorded on that run; otherwise the run is
  created (`schedule_id=name`) with its `workflow.started` event. A tick therefore never
  starts a second concurrent run of the same job.
- after the commit, the run's start is published (deduplicated, so publishing again after a
  crash or for a duplicate of a still-pending run is harmless).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from fastapi import APIRouter, Request
from pydantic import BaseModel, ValidationError
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import transaction
from app.errors import BadRequest, NotFound
from app.runtime.ids import derived_run_id
from app.runtime.models import TERMINAL_RUN_STATUSES, Event, RunStatus, WorkflowRun
from app.runtime.router import _verified_body
from app.runtime.runtime import Runtime
from app.runtime.schedules import Schedule

log = logging.getLogger(__name__)

router = APIRouter(tags=["schedules"])

TICK_HEADER = "upstash-schedule-tick"
CLOCK_SKEW = timedelta(seconds=2)


class TickOutcome(StrEnum):
    STARTED = "started"  # a new run
    DUPLICATE = "duplicate"  # this tick's run already exists
    SKIPPED = "skipped"  # a run of the schedule is unfinished


class TickRead(BaseModel):
    status: TickOutcome
    run_id: str
    tick: datetime
    running_run_id: str | None = None


@dataclass(frozen=True, slots=True)
class _Started:
    outcome: TickOutcome
    run: WorkflowRun | None
    running_run_id: str | None = None


@router.post("/schedules/{name}")
async def tick(name: str, request: Request) -> TickRead:
    """One tick of schedule `name`, delivered by QStash: start its run unless one is unfinished."""
    await _verified_body(request)
    runtime: Runtime = request.app.state.runtime
    schedule = declared_schedule(getattr(request.app.state, "schedules", []), name)
    moment = tick_time(schedule, request.headers.get(TICK_HEADER), now=runtime.clock())
    run_id = derived_run_id("schedule", name, moment.isoformat())
    started = await start_scheduled_run(runtime, schedule, run_id=run_id, tick=moment)
    if started.run is not None and started.run.status == RunStatus.PENDING:
        await runtime.publish_continue(started.run, 0, "start", None)
    return TickRead(status=started.outcome, run_id=run_id, tick=moment, running_run_id=started.running_run_id)


def declared_schedule(schedules: list[Schedule], name: str) -> Schedule:
    for schedule in schedules:
        if schedule.name == name:
            return schedule
    raise NotFound(f"no schedule named {name!r} is declared (app.workflows.schedules.SCHEDULES); run "
                   "`curaway schedules sync` to delete schedules that are no longer declared")  # fmt: skip


def tick_time(schedule: Schedule, header: str | None, *, now: datetime) -> datetime:
    """The tick a delivery stands for: the forwarded tick header, else the latest cron time."""
    if header is None:
        return schedule.parsed().latest_at_or_before(now + CLOCK_SKEW)
    try:
        return datetime.fromtimestamp(int(header), UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise BadRequest(f"Upstash-Schedule-Tick {header!r} must be unix seconds") from exc


async def start_scheduled_run(runtime: Runtime, schedule: Schedule, *, run_id: str, tick: datetime) -> _Started:
    """Create the tick's run unless it exists or another run of the schedule is unfinished."""
    workflow = runtime.registry.get(schedule.workflow)
    try:
        workflow.parse_payload(schedule.payload)
    except ValidationError as exc:
        raise BadRequest(f"schedule {schedule.name!r}: invalid payload for workflow {workflow.name!r}: {exc}") from exc
    async with transaction(runtime.store.sessions) as session:
        await _lock_schedule(session, schedule.name)
        existing = await session.get(WorkflowRun, run_id)
        if existing is not None:
            return _Started(TickOutcome.DUPLICATE, existing)
        running = await session.scalar(
            select(WorkflowRun.id)
            .where(WorkflowRun.schedule_id == schedule.name, WorkflowRun.status.not_in(list(TERMINAL_RUN_STATUSES)))
            .order_by(WorkflowRun.created_at)
            .limit(1)
        )
        now = runtime.clock()  # read under the lock: a new run is created after the last one finished
        if running is not None:
            await _record_skip(session, running, schedule.name, run_id=run_id, tick=tick, now=now)
            return _Started(TickOutcome.SKIPPED, None, running)
        run = WorkflowRun(
            id=run_id, workflow=workflow.name, status=RunStatus.PENDING, payload=schedule.payload,
            schedule_id=schedule.name, created_at=now, updated_at=now,
        )  # fmt: skip
        session.add(run)
        started = {"workflow": workflow.name, "schedule": schedule.name, "tick": tick.isoformat()}
        session.add(Event(workflow_id=run_id, type="workflow.started", payload=started, created_at=now))
    log.info("schedule %s: tick %s started %s run %s", schedule.name, tick.isoformat(), workflow.name, run_id)
    return _Started(TickOutcome.STARTED, run)


async def _lock_schedule(session: AsyncSession, name: str) -> None:
    """Serialise the ticks of one schedule (SQLite: BEGIN IMMEDIATE already does)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"schedule:{name}"})


async def _record_skip(
    session: AsyncSession, running: str, name: str, *, run_id: str, tick: datetime, now: datetime
) -> None:
    """A `schedule.skipped` event on the unfinished run, once per skipped tick."""
    recorded = await session.scalars(
        select(Event.payload).where(Event.workflow_id == running, Event.type == "schedule.skipped")
    )
    if any(payload.get("skipped_run_id") == run_id for payload in recorded):
        return
    payload = {"schedule": name, "tick": tick.isoformat(), "skipped_run_id": run_id, "running_run_id": running}
    session.add(Event(workflow_id=running, type="schedule.skipped", payload=payload, created_at=now))
    log.info("schedule %s: tick %s skipped, run %s is unfinished", name, tick.isoformat(), running)
