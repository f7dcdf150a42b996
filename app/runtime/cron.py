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
- `RunStore.start_exclusive` (one transaction, serialised per schedule): if a run of this
  schedule is unfinished the tick is skipped and a `job.skipped` event is recorded on that
  run; otherwise the run is created (`schedule_id=name`) with its `workflow.started` event and
  its start in the outbox. A tick therefore never starts a second concurrent run of the job.
- after the commit, the run's start is published (deduplicated, so publishing again after a
  crash or for a duplicate of a still-pending run is harmless; the watchdog re-sends it if
  QStash refused it).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from fastapi import APIRouter, Request
from pydantic import BaseModel, ValidationError

from app.errors import BadRequest, NotFound, error_responses
from app.runtime.ids import derived_run_id
from app.runtime.models import RunStatus
from app.runtime.router import verified_body
from app.runtime.runtime import Runtime
from app.runtime.schedules import Schedule

log = logging.getLogger(__name__)

router = APIRouter(tags=["schedules"], responses=error_responses(400, 401, 404))

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


@router.post("/schedules/{name}")
async def tick(name: str, request: Request) -> TickRead:
    """One tick of schedule `name`, delivered by QStash: start its run unless one is unfinished."""
    await verified_body(request)
    runtime: Runtime = request.app.state.runtime
    schedule = declared_schedule(getattr(request.app.state, "schedules", []), name)
    moment = tick_time(schedule, request.headers.get(TICK_HEADER), now=runtime.clock())
    return await start_tick(runtime, schedule, moment)


async def start_tick(runtime: Runtime, schedule: Schedule, moment: datetime, *, manual: bool = False) -> TickRead:
    """Start the run of `schedule` for the tick at `moment`, unless a run of it is unfinished.

    Used by the tick endpoint and by `curaway jobs run` (`manual=True`, noted on the events).
    """
    name = schedule.name
    run_id = derived_run_id("schedule", name, moment.isoformat())
    workflow = runtime.registry.get(schedule.workflow)
    try:
        workflow.parse_payload(schedule.payload)
    except ValidationError as exc:
        raise BadRequest(f"schedule {schedule.name!r}: invalid payload for workflow {workflow.name!r}: {exc}") from exc
    tick_event: dict[str, object] = {"schedule": name, "tick": moment.isoformat()}
    if manual:
        tick_event["manual"] = True
    run, start, running = await runtime.store.start_exclusive(
        run_id, workflow.name, schedule.payload, key=name, event=tick_event
    )
    if running is not None:
        log.info("schedule %s: tick %s skipped, run %s is unfinished", name, moment.isoformat(), running)
        return TickRead(status=TickOutcome.SKIPPED, run_id=run_id, tick=moment, running_run_id=running)
    assert run is not None
    if start is not None:
        log.info("schedule %s: tick %s started %s run %s", name, moment.isoformat(), workflow.name, run_id)
        await runtime.flush([start])
        return TickRead(status=TickOutcome.STARTED, run_id=run_id, tick=moment)
    if run.status == RunStatus.PENDING:  # a duplicated tick of a run whose start is still due
        await runtime.publish_continue(run, 0, "start", None)
    return TickRead(status=TickOutcome.DUPLICATE, run_id=run_id, tick=moment)


def declared_schedule(schedules: list[Schedule], name: str) -> Schedule:
    for schedule in schedules:
        if schedule.name == name:
            return schedule
    raise NotFound(
        f"no schedule named {name!r} is declared (app.workflows.schedules.SCHEDULES); run "
        "`curaway schedules sync` to delete schedules that are no longer declared"
    )


def tick_time(schedule: Schedule, header: str | None, *, now: datetime) -> datetime:
    """The tick a delivery stands for: the forwarded tick header, else the latest cron time."""
    if header is None:
        return schedule.parsed().latest_at_or_before(now + CLOCK_SKEW)
    try:
        return datetime.fromtimestamp(int(header), UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise BadRequest(f"Upstash-Schedule-Tick {header!r} must be unix seconds") from exc
