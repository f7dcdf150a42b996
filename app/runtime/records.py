"""The records every run transition is made of: the lease fence, step rows, settling, events.

`RunBase` holds the session factory and the clock and the helpers that `CoordinationStore`
(coordination.py), `RecoveryStore` (recovery.py) and `RunStore` (store.py) build their
one-transaction transitions from.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Row, Table, bindparam, case, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.sql.dml import Insert, Update

from app.db import sqlite_timestamp, utcnow
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
from app.runtime.sql import (
    START_ATTEMPT_PG,
    START_ATTEMPT_SQLITE_DONE,
    START_ATTEMPT_SQLITE_EVENT,
    START_ATTEMPT_SQLITE_FENCE,
    START_ATTEMPT_SQLITE_START,
)

Clock = Callable[[], datetime]
T = TypeVar("T")

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


def row_reader(table: Table, dialect: Dialect) -> Callable[[Sequence[Any]], dict[str, Any]]:
    """What SQLAlchemy makes of a plain row of all `table`'s columns, in order: JSON decoded, timestamps aware...

    For rows read by plain statements (`LoopSQLite.write`), to hand on like those SQLAlchemy reads.
    """
    readers = [(column.key, column.type.dialect_impl(dialect).result_processor(dialect, None)) for column in table.c]

    def read(values: Sequence[Any]) -> dict[str, Any]:
        return {key: value if read is None else read(value) for (key, read), value in zip(readers, values, strict=True)}

    return read


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
        engine = sessions.kw.get("bind")
        # Postgres: where one statement does a whole transition, it runs without BEGIN/COMMIT.
        self.autocommit: AsyncEngine | None = None
        # SQLite: the engine whose connections run `LoopSQLite.write` (the hottest writes).
        self.sqlite: AsyncEngine | None = None
        if isinstance(engine, AsyncEngine) and engine.dialect.name == "postgresql":
            self.autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        elif isinstance(engine, AsyncEngine) and engine.dialect.name == "sqlite":
            self.sqlite = engine
            self.sqlite_readers = (row_reader(RUNS, engine.dialect), row_reader(STEPS, engine.dialect))

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
        raise await _fence_refused(session, run_id)

    def _attempt_values(
        self, run_id: str, owner: str, position: int, name: str, kind: StepKind, attempt: int
    ) -> dict[str, Any]:
        """The parameters of `START_ATTEMPT_PG` / `write_start_attempt`, without the earlier result's."""
        now = self.clock()
        return {
            "run_id": run_id,
            "owner": owner,
            "now": now,
            "lease_expires_at": None if self.lease_ttl_s is None else now + timedelta(seconds=self.lease_ttl_s),
            "position": position,
            "name": name,
            "kind": kind.value,
            "attempt": attempt,
        }

    async def _start_attempt_at_once(self, values: dict[str, Any], done: Completed | None) -> None:
        """`RunStore.start_attempt` in one autocommitted statement (Postgres, see `START_ATTEMPT_PG`)."""
        assert self.autocommit is not None
        values.update(done_position=None, done_attempt=None, result=None, event=None)
        if done is not None:
            values.update(
                done_position=done.position,
                done_attempt=done.attempt,
                result=json.dumps(done.result),
                event=json.dumps({"position": done.position, **done.event}),
            )
        async with self.autocommit.connect() as connection:
            row = (await connection.execute(START_ATTEMPT_PG, values)).one()
            if not row.fenced:
                raise await _fence_refused(connection, values["run_id"])
            if done is not None and not row.done:
                raise await _completion_refused(connection, values["run_id"], done)

    async def _write_sqlite(self, fn: Callable[[dict[str, Any], sqlite3.Connection], T], values: dict[str, Any]) -> T:
        """`fn(values, connection)` as one `LoopSQLite.write` (SQLite); timestamps in `values` as SQLite stores them."""
        assert self.sqlite is not None
        plain = {key: sqlite_timestamp(v) if isinstance(v, datetime) else v for key, v in values.items()}
        async with self.sqlite.connect() as connection:
            driver = (await connection.get_raw_connection()).driver_connection
            return await driver.write(functools.partial(fn, plain))

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
                raise await _completion_refused(session, run.id, done)
            await self._event(session, run, "step.completed", {"step": name, "position": done.position, **done.event})

    # -- helpers ------------------------------------------------------------------------
    async def _add_run(
        self, session: AsyncSession, run_id: str, workflow: str, payload: Any, *, labels: dict[str, str], **extra: Any
    ) -> WorkflowRun:
        """Insert a new pending run and index its labels; the run as a transient `WorkflowRun`.

        A `run_id` that exists already raises `IntegrityError`.
        """
        run = dict(id=run_id, workflow=workflow, payload=payload, labels=labels, **extra)
        return (await self._add_runs(session, [run]))[0]

    async def _add_runs(self, session: AsyncSession, runs: Sequence[dict[str, Any]]) -> list[WorkflowRun]:
        """`_add_run` for several runs, one INSERT per table; each gives `id`, `workflow`, `payload`, `labels`..."""
        if not runs:
            return []
        now = self.clock()
        values = [
            dict(status=RunStatus.PENDING, resumes=0, wake_pending=False, created_at=now, updated_at=now, **run)
            for run in runs
        ]
        await session.execute(insert(RUNS), values)
        labels = [{"run_id": run["id"], "key": k, "value": v} for run in runs for k, v in run["labels"].items()]
        if labels:
            await session.execute(insert(LABELS), labels)
        return [WorkflowRun(**run) for run in values]

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
        await self._events(session, [(run, type_, payload)])

    async def _events(self, session: AsyncSession, events: Sequence[tuple[Any, str, dict[str, Any]]]) -> None:
        """Append event rows, each `(run, type, payload)`, in one INSERT."""
        now = self.clock()
        rows = []
        for run, type_, payload in events:
            labels = run.labels or {}
            row = {name: labels.get(name) for name in EVENT_LABELS}
            row.update(workflow_id=run.id, type=type_, payload=payload, created_at=now)
            rows.append(row)
        if rows:
            await session.execute(EVENT_INSERT, rows)


def write_start_attempt(completed: Sequence[Completed], values: dict[str, Any], connection: sqlite3.Connection) -> None:
    """`RunStore.start_attempt`'s writes on SQLite (in `LoopSQLite.write`'s transaction, which a refusal rolls back)."""
    run_id = values["run_id"]
    fenced = connection.execute(START_ATTEMPT_SQLITE_FENCE, values).fetchone()
    if fenced is None:
        status = connection.execute("SELECT status FROM workflow_runs WHERE id = ?", (run_id,)).fetchone()
        raise _fence_refusal(run_id, status and status[0])
    labels = json.loads(fenced[0]) or {}
    for done in completed:
        where = {"run_id": run_id, "done_position": done.position, "done_attempt": done.attempt}
        step = connection.execute(
            START_ATTEMPT_SQLITE_DONE, {**where, "result": json.dumps(done.result), "now": values["now"]}
        )
        name = step.fetchone()
        if name is None:
            recorded = connection.execute(
                "SELECT name FROM workflow_steps WHERE run_id = ? AND position = ?", (run_id, done.position)
            ).fetchone()
            raise _completion_refusal(run_id, done, recorded and recorded[0])
        event = json.dumps({"step": name[0], "position": done.position, **done.event})
        row = {label: labels.get(label) for label in EVENT_LABELS}
        connection.execute(START_ATTEMPT_SQLITE_EVENT, {**row, "run_id": run_id, "event": event, "now": values["now"]})
    connection.execute(START_ATTEMPT_SQLITE_START, values)


def _fence_refusal(run_id: str, status: str | None) -> Exception:
    """Why a fenced write found no run row it may touch (the run's `status`): cancelled, or its lease lost."""
    if status == RunStatus.CANCELLED:
        return RunCancelledError("the run was cancelled", run_id=run_id)
    return LeaseLostError("another delivery holds this run's lease", run_id=run_id)


def _completion_refusal(run_id: str, done: Completed, name: str | None) -> Exception:
    """Why a step's result was not recorded (`name`: the step's, if recorded): missing, or a stale attempt."""
    if name is None:
        return LookupError(f"[{run_id}] step at position {done.position} is not recorded")
    return LeaseLostError(f"attempt {done.attempt} of step {name!r} is stale; its result is dropped", run_id=run_id)


async def _fence_refused(db: AsyncSession | AsyncConnection, run_id: str) -> Exception:
    return _fence_refusal(run_id, await db.scalar(RUN_STATUS, {"run_id": run_id}))


async def _completion_refused(db: AsyncSession | AsyncConnection, run_id: str, done: Completed) -> Exception:
    name = await db.scalar(STEP_NAME, {"b_run_id": run_id, "b_position": done.position})
    return _completion_refusal(run_id, done, name)


def failed_step(step: WorkflowStep) -> Failure:
    """The failure a failed step's row records."""
    return Failure.recorded(step.name, step.error, step.error_type, step.attempts)
