"""The records every run transition is made of: the lease fence, step rows, settling, events.

`RunBase` holds the session factory and the clock and the helpers that `CoordinationStore`
(coordination.py) and `RunStore` (store.py) build their one-transaction transitions from.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, Table, bindparam, case, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.dml import Insert, Update

from app.db import utcnow
from app.runtime.errors import Failure, LeaseLostError, RunCancelledError
from app.runtime.models import (
    EVENT_LABELS,
    TERMINAL_RUN_STATUSES,
    Event,
    RunStatus,
    StepKind,
    StepStatus,
    WorkflowRun,
    WorkflowRunLabel,
    WorkflowStep,
)

Clock = Callable[[], datetime]

# The hot path writes through the tables (SQLAlchemy Core): one statement per change, no ORM
# unit of work or identity map. The rows it returns are read-only `Row`s with the same names.
# Its statements are built once and executed with parameters: building one costs more CPU
# than Postgres takes to run it, and a statement object keeps its compiled-cache key.
RUNS = WorkflowRun.__table__
STEPS = WorkflowStep.__table__
EVENTS = Event.__table__
LABELS = WorkflowRunLabel.__table__


def param(table: Table, column: str, key: str | None = None) -> Any:
    """A bound parameter typed like `table.column` (JSON, timestamps), named `key` or the column."""
    return bindparam(key or column, type_=table.c[column].type)


@functools.cache
def fence_statement(columns: tuple[str, ...], keep_failing: bool) -> Update:
    """`UPDATE workflow_runs SET <columns> WHERE id = :run_id AND lease_owner = :owner ... RETURNING *`.

    With `keep_failing`, a failing run keeps that status whatever `:status` says.
    """
    values = {column: param(RUNS, column) for column in columns}
    if keep_failing:
        values["status"] = case((RUNS.c.status == RunStatus.FAILING, RunStatus.FAILING.value), else_=values["status"])
    return (
        update(RUNS)
        .where(RUNS.c.id == bindparam("run_id"), RUNS.c.lease_owner == bindparam("owner"))
        .where(RUNS.c.status != RunStatus.CANCELLED)
        .values(values)
        .returning(*RUNS.c)
    )


RUN_STATUS = select(RUNS.c.status).where(RUNS.c.id == bindparam("run_id"))
RUN_ROW = select(*RUNS.c).where(RUNS.c.id == bindparam("run_id"))
SETTLE_STEP = (
    update(STEPS)
    .where(STEPS.c.run_id == bindparam("b_run_id"), STEPS.c.position == bindparam("b_position"))
    .where(STEPS.c.status.in_([StepStatus.WAITING, StepStatus.CALLING]))
    .values({column: param(STEPS, column) for column in ("status", "result", "error", "error_type", "finished_at")})
    .returning(*STEPS.c)
)
EVENT_INSERT: Insert = insert(EVENTS).values(
    {column: param(EVENTS, column) for column in ("workflow_id", *EVENT_LABELS, "type", "payload", "created_at")}
)
_STEP_DONE = {column: param(STEPS, column) for column in ("result", "finished_at")}
COMPLETE_STEP = (
    update(STEPS)
    .where(STEPS.c.run_id == bindparam("b_run_id"), STEPS.c.position == bindparam("b_position"))
    .values(status=StepStatus.COMPLETED, error=None, **_STEP_DONE)
    .returning(STEPS.c.name)
)
COMPLETE_ATTEMPT = COMPLETE_STEP.where(STEPS.c.status == StepStatus.RUNNING, STEPS.c.attempts == bindparam("b_attempt"))
STEP_NAME = select(STEPS.c.name).where(
    STEPS.c.run_id == bindparam("b_run_id"), STEPS.c.position == bindparam("b_position")
)


@functools.cache
def start_step_statement(dialect: str) -> Insert:
    """Insert a step as running, or mark its next attempt running (one upsert)."""
    columns = ("run_id", "position", "name", "kind", "status", "attempts", "started_at")
    statement = (
        (postgresql if dialect == "postgresql" else sqlite)
        .insert(STEPS)
        .values({column: param(STEPS, column) for column in columns})
    )
    return statement.on_conflict_do_update(
        index_elements=[STEPS.c.run_id, STEPS.c.position],
        set_={"status": StepStatus.RUNNING, "attempts": statement.excluded.attempts, "wake_at": None},
    )


@dataclass(frozen=True, slots=True)
class Completed:
    """A step's result, written with the delivery's next write (`RunStore.start_attempt`...)."""

    position: int
    result: Any
    event: dict[str, Any]
    attempt: int | None = None


class RunBase:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Clock = utcnow,
        lease_ttl_s: float | None = None,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.lease_ttl_s = lease_ttl_s  # when set, every fenced write also extends the lease

    async def _fence(self, session: AsyncSession, run_id: str, owner: str, **values: Any) -> Row[Any]:
        """Touch the run row `WHERE lease_owner = owner` (and extend the lease); the run as a Row.

        A failing run stays failing while its on_failure handler runs, sleeps or retries.
        """
        now = self.clock()
        values["updated_at"] = now
        if self.lease_ttl_s is not None:
            values.setdefault("lease_expires_at", now + timedelta(seconds=self.lease_ttl_s))
        keep_failing = "status" in values and values["status"] not in TERMINAL_RUN_STATUSES
        statement = fence_statement(tuple(sorted(values)), keep_failing)
        run = (await session.execute(statement, {"run_id": run_id, "owner": owner, **values})).first()
        if run is not None:
            return run
        status = await session.scalar(RUN_STATUS, {"run_id": run_id})
        if status == RunStatus.CANCELLED:
            raise RunCancelledError("the run was cancelled", run_id=run_id)
        raise LeaseLostError("another delivery holds this run's lease", run_id=run_id)

    async def _start_step(
        self, session: AsyncSession, run_id: str, position: int, name: str, kind: StepKind, attempt: int
    ) -> None:
        """Insert the step as running, or mark its next attempt running (one upsert)."""
        values = {"run_id": run_id, "position": position, "name": name, "kind": kind, "attempts": attempt}
        statement = start_step_statement(session.bind.dialect.name)
        await session.execute(statement, {**values, "status": StepStatus.RUNNING, "started_at": self.clock()})

    async def _complete_steps(self, session: AsyncSession, run: Row[Any], completed: Sequence[Completed]) -> None:
        """Record each step's result and its `step.completed` event (one UPDATE ... RETURNING each).

        With an `attempt`, only if that attempt is still the step's current one.
        """
        for done in completed:
            where = {"b_run_id": run.id, "b_position": done.position}
            statement = COMPLETE_STEP if done.attempt is None else COMPLETE_ATTEMPT
            values = {**where, "result": done.result, "finished_at": self.clock()}
            if done.attempt is not None:
                values["b_attempt"] = done.attempt
            name = (await session.execute(statement, values)).scalar_one_or_none()
            if name is None:
                name = await session.scalar(STEP_NAME, where)
                if name is None:
                    raise LookupError(f"[{run.id}] step at position {done.position} is not recorded")
                raise LeaseLostError(
                    f"attempt {done.attempt} of step {name!r} is stale; its result is dropped", run_id=run.id
                )
            await self._event(session, run, "step.completed", {"step": name, "position": done.position, **done.event})

    # -- helpers ------------------------------------------------------------------------
    async def _add_run(
        self, session: AsyncSession, run_id: str, workflow: str, payload: Any, *, labels: dict[str, str], **extra: Any
    ) -> WorkflowRun:
        """Insert a new pending run and index its labels; the run as a transient `WorkflowRun`.

        A `run_id` that exists already raises `IntegrityError`.
        """
        now = self.clock()
        values = dict(
            id=run_id,
            workflow=workflow,
            status=RunStatus.PENDING,
            payload=payload,
            labels=labels,
            resumes=0,
            wake_pending=False,
            created_at=now,
            updated_at=now,
            **extra,
        )
        await session.execute(insert(RUNS), values)
        if labels:
            await session.execute(insert(LABELS), [{"run_id": run_id, "key": k, "value": v} for k, v in labels.items()])
        return WorkflowRun(**values)

    def _add_step(
        self,
        session: AsyncSession,
        run_id: str,
        position: int,
        name: str,
        kind: StepKind,
        status: StepStatus,
        *,
        result: Any = None,
        wake_at: datetime | None = None,
        attempts: int = 1,
    ) -> None:
        finished = self.clock() if status in (StepStatus.COMPLETED, StepStatus.FAILED) else None
        session.add(
            WorkflowStep(
                run_id=run_id,
                position=position,
                name=name,
                kind=kind,
                status=status,
                attempts=attempts,
                result=result,
                wake_at=wake_at,
                started_at=self.clock(),
                finished_at=finished,
            )
        )

    async def _settle_step(
        self,
        session: AsyncSession,
        run_id: str,
        position: int,
        status: StepStatus,
        *,
        result: Any = None,
        error: str | None = None,
        error_type: str | None = None,
    ) -> Row[Any] | None:
        """Move a waiting step to its outcome exactly once (its row); None if something else already did."""
        values = {"status": status, "result": result, "error": error, "error_type": error_type}
        outcome = await session.execute(
            SETTLE_STEP, {"b_run_id": run_id, "b_position": position, "finished_at": self.clock(), **values}
        )
        return outcome.first()

    async def _step(self, session: AsyncSession, run_id: str, position: int) -> WorkflowStep | None:
        return await session.scalar(
            select(WorkflowStep).where(WorkflowStep.run_id == run_id, WorkflowStep.position == position)
        )

    async def _require_step(self, session: AsyncSession, run_id: str, position: int) -> WorkflowStep:
        step = await self._step(session, run_id, position)
        if step is None:
            raise LookupError(f"[{run_id}] step at position {position} is not recorded")
        return step

    async def _event(self, session: AsyncSession, run: Any, type_: str, payload: dict[str, Any]) -> None:
        """Append an event row for `run` (a `WorkflowRun` or a fenced `Row`): one Core INSERT."""
        labels = run.labels or {}
        values = {name: labels.get(name) for name in EVENT_LABELS}
        values.update(workflow_id=run.id, type=type_, payload=payload, created_at=self.clock())
        await session.execute(EVENT_INSERT, values)


def failed_step(step: WorkflowStep) -> Failure:
    """The failure a failed step's row records."""
    return Failure.recorded(step.name, step.error, step.error_type, step.attempts)
