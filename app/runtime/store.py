"""Persistence of runs, steps and their events: every state change is one transaction.

Each write that changes a run or a step also appends its event row in the same transaction,
so an event exists exactly when the change it describes does (a step recorded once has one
`step.completed` event, whatever the number of deliveries).

Writes made while driving a run are *fenced*: the transaction first touches the run row
`WHERE lease_owner = <this delivery>`. If another delivery has taken the lease over, the
write is refused with `LeaseLostError` instead of racing it. On Postgres that UPDATE also
holds the row lock until commit, which serialises the run's writes across processes.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections import namedtuple
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import transaction
from app.runtime import outbox
from app.runtime.coordination import CoordinationStore, Lease, Ring
from app.runtime.errors import Failure
from app.runtime.models import (
    TERMINAL_RUN_STATUSES,
    Event,
    RunStatus,
    StepKind,
    StepStatus,
    WorkflowRun,
    WorkflowRunLabel,
    WorkflowStep,
)
from app.runtime.outbox import RunRef, Wake
from app.runtime.records import RUN_ROW, RUN_STATUS, RUNS, STEPS, Completed, param, write_start_attempt
from app.runtime.recovery import RecoveryStore
from app.runtime.sql import LEASE_SQLITE, LOAD_STEPS_SQLITE

_LOAD_STEPS = select(*STEPS.c).where(STEPS.c.run_id == bindparam("run_id"))
_LEASE = (
    update(RUNS)
    .where(
        RUNS.c.id == bindparam("run_id"),
        RUNS.c.status.not_in(TERMINAL_RUN_STATUSES),
        or_(RUNS.c.lease_owner.is_(None), RUNS.c.lease_expires_at < param(RUNS, "lease_expires_at", "now")),
    )
    .values(lease_owner=bindparam("owner"), lease_expires_at=param(RUNS, "lease_expires_at"), wake_pending=False)
    .returning(*RUNS.c)
)
_HELD = (RUNS.c.id == bindparam("run_id"), RUNS.c.lease_owner == bindparam("owner"))
_RENEW = update(RUNS).where(*_HELD).values(lease_expires_at=param(RUNS, "lease_expires_at"))
_RELEASE = update(RUNS).where(*_HELD).values(lease_owner=None, lease_expires_at=None)
_RELEASE_UNRUNG = _RELEASE.where(RUNS.c.wake_pending.is_(False))
_RELEASED = {"lease_owner": None, "lease_expires_at": None}  # given back by a run's last write
_ANSWER = update(RUNS).where(*_HELD).values(wake_pending=False).returning(*RUNS.c)
# A step read by `_take_lease`: named like WorkflowStep, as `_LOAD_STEPS`'s rows are.
StepRow = namedtuple("StepRow", STEPS.c.keys())


def _take_lease(values: dict[str, Any], connection: sqlite3.Connection) -> tuple[Any, list[Any]] | None:
    """`LEASE_SQLITE`, and if it took the lease, the run's steps (in `LoopSQLite.write`'s transaction)."""
    run = connection.execute(LEASE_SQLITE, values).fetchone()
    return None if run is None else (run, connection.execute(LOAD_STEPS_SQLITE, values).fetchall())


class RunStore(CoordinationStore, RecoveryStore):
    # -- runs ---------------------------------------------------------------------------

    async def create_run(
        self,
        run_id: str,
        workflow: str,
        payload: Any,
        *,
        labels: dict[str, str] | None = None,
    ) -> tuple[WorkflowRun, Wake | None]:
        """Insert the run, its labels, its `workflow.started` event and the outbox row that starts it.

        Returns `(run, wake)`, or `(existing run, None)` if the run already exists.
        """
        try:
            async with transaction(self.sessions) as session:
                run, wake = await self._insert_run(session, run_id, workflow, payload, labels or {})
            return run, wake
        except IntegrityError:
            existing = await self.get_run(run_id)
            if existing is None:
                raise
            return existing, None

    async def add_run(
        self, session: AsyncSession, run_id: str, workflow: str, payload: Any, *, labels: dict[str, str]
    ) -> Wake:
        """`create_run` in the caller's transaction (not committed); the outbox row that starts the run."""
        _, wake = await self._insert_run(session, run_id, workflow, payload, labels)
        return wake

    async def start_exclusive(
        self, run_id: str, workflow: str, payload: Any, *, key: str, event: dict[str, Any]
    ) -> tuple[WorkflowRun | None, Wake | None, str | None]:
        """Create the run unless it exists or another run with the same `key` is unfinished.

        Serialised per key (Postgres: an advisory lock; SQLite: `BEGIN IMMEDIATE`). Returns
        `(run, wake, None)` for a new run, `(existing, None, None)` if `run_id` exists, and
        `(None, None, unfinished run ID)` when another run holds the key: that run gets a
        `job.skipped` event naming `run_id`, once. The key is kept as the run's
        `schedule_id`: cron ticks (`cron.py`) use the schedule's name.
        """
        async with transaction(self.sessions) as session:
            await self._lock(session, f"exclusive:{key}")
            existing = await session.get(WorkflowRun, run_id)
            if existing is not None:
                return existing, None, None
            running = await session.scalar(
                select(WorkflowRun)
                .where(WorkflowRun.schedule_id == key, WorkflowRun.status.not_in(list(TERMINAL_RUN_STATUSES)))
                .order_by(WorkflowRun.created_at)
                .limit(1)
            )
            if running is not None:
                skipped = {**event, "skipped_run_id": run_id, "running_run_id": running.id}
                await self._event_once(session, running, "job.skipped", skipped)
                return None, None, running.id
            run, wake = await self._insert_run(session, run_id, workflow, payload, {}, schedule_id=key, event=event)
            return run, wake, None

    async def _insert_run(
        self,
        session: AsyncSession,
        run_id: str,
        workflow: str,
        payload: Any,
        labels: dict[str, str],
        *,
        schedule_id: str | None = None,
        event: dict[str, Any] | None = None,
    ) -> tuple[WorkflowRun, Wake]:
        run = await self._add_run(session, run_id, workflow, payload, labels=labels, schedule_id=schedule_id)
        await self._event(session, run, "workflow.started", {"workflow": workflow, **(event or {})})
        return run, await outbox.add(session, RunRef(run_id, workflow, 0), "start", now=self.clock())

    async def _event_once(self, session: AsyncSession, run: WorkflowRun, type_: str, payload: dict[str, Any]) -> None:
        """Record `type_` on the run unless an event of that type with this payload exists."""
        recorded = await session.scalars(select(Event.payload).where(Event.workflow_id == run.id, Event.type == type_))
        if payload not in list(recorded):
            await self._event(session, run, type_, payload)

    async def runs_labelled(self, key: str, value: str, *, limit: int = 100) -> list[WorkflowRun]:
        """The runs carrying label `key=value`, newest first (an indexed look-up)."""
        query = (
            select(WorkflowRun)
            .join(WorkflowRunLabel, WorkflowRunLabel.run_id == WorkflowRun.id)
            .where(WorkflowRunLabel.key == key, WorkflowRunLabel.value == value)
            .order_by(WorkflowRun.created_at.desc())
            .limit(limit)
        )
        async with self.sessions() as session:
            return list(await session.scalars(query))

    async def get_run(self, run_id: str) -> WorkflowRun | None:
        async with self.sessions() as session:
            return await session.get(WorkflowRun, run_id)

    async def load_steps(self, run_id: str) -> dict[int, WorkflowStep]:
        async with self.sessions() as session:
            return await self._load_steps(session, run_id)

    async def _load_steps(self, session: AsyncSession, run_id: str) -> dict[int, WorkflowStep]:
        rows = await session.execute(_LOAD_STEPS, {"run_id": run_id})
        return {row.position: row for row in rows}  # read-only rows, named like WorkflowStep

    # -- the per-run lease ----------------------------------------------------------------

    async def acquire_or_ring(self, run_id: str, owner: str, ttl_s: float) -> Lease | Ring | None:
        """Take the run's lease, or else ring the holder's doorbell, in one transaction.

        - `Lease`: the lease is this delivery's; with the run and its recorded steps, read after
          the doorbell was cleared: whatever rang before is in them. (On Postgres the lease's
          UPDATE is autocommitted and the steps read by the next statement, which sees every
          commit before it; what commits later finds the lease held and rings.)
        - `Ring.RANG`: another delivery holds a live lease and will drive the run once more
          before it lets go (`release_or_answer`): nothing this delivery carried is lost;
        - `Ring.FINISHED`: the run is finished or unknown: nothing to do;
        - None: the lease changed hands between the two statements (Postgres): try again.
        """
        now = self.clock()
        lease = {"run_id": run_id, "owner": owner, "now": now, "lease_expires_at": now + timedelta(seconds=ttl_s)}
        if self.sqlite is not None:  # SQLite: the usual case (the lease is free) in plain statements
            taken = await self._take_lease_sqlite(lease)
            if taken is not None:
                return taken
        if self.autocommit is not None:  # Postgres: two autocommitted statements, the usual case
            async with self.autocommit.connect() as connection:
                row = (await connection.execute(_LEASE, lease)).first()
                if row is not None:  # the steps are read after the lease's commit, as below
                    try:
                        steps = await connection.execute(_LOAD_STEPS, {"run_id": run_id})
                    except BaseException:  # give the lease back rather than leave it to lapse
                        with contextlib.suppress(Exception):
                            await self.release_lease(run_id, owner)
                        raise
                    return Lease(WorkflowRun(**row._mapping), {step.position: step for step in steps})
        async with transaction(self.sessions) as session:
            row = (await session.execute(_LEASE, lease)).first()
            if row is not None:
                return Lease(WorkflowRun(**row._mapping), await self._load_steps(session, run_id))
            if await self._ring(session, run_id, now):
                return Ring.RANG
            status = await session.scalar(RUN_STATUS, {"run_id": run_id})
            return Ring.FINISHED if status is None or status in TERMINAL_RUN_STATUSES else None

    async def _take_lease_sqlite(self, lease: dict[str, Any]) -> Lease | None:
        taken = await self._write_sqlite(_take_lease, lease)
        if taken is None:
            return None
        run, steps = taken
        read_run, read_step = self.sqlite_readers
        rows = [StepRow(**read_step(step)) for step in steps]
        return Lease(WorkflowRun(**read_run(run)), {step.position: step for step in rows})

    async def renew_lease(self, run_id: str, owner: str, ttl_s: float) -> bool:
        until = self.clock() + timedelta(seconds=ttl_s)
        async with transaction(self.sessions) as session:
            result = await session.execute(_RENEW, {"run_id": run_id, "owner": owner, "lease_expires_at": until})
            return result.rowcount == 1

    async def release_or_answer(self, run_id: str, owner: str) -> Lease | None:
        """Give the lease back, unless a delivery rang meanwhile: then the run to drive again, with its steps.

        The steps are read in the transaction that clears the doorbell, as `acquire_or_ring`
        reads them: whatever rang is in them. When it returns None the lease is no longer this
        delivery's (given back, or lost).
        """
        held = {"run_id": run_id, "owner": owner}
        if self.autocommit is not None:  # Postgres: the usual case (nobody rang) in one autocommitted statement
            async with self.autocommit.connect() as connection:
                if (await connection.execute(_RELEASE_UNRUNG, held)).rowcount == 1:
                    return None
        async with transaction(self.sessions) as session:
            if self.autocommit is None and (await session.execute(_RELEASE_UNRUNG, held)).rowcount == 1:
                return None
            row = (await session.execute(_ANSWER, held)).first()
            if row is None:
                return None
            if row.status in TERMINAL_RUN_STATUSES:  # nothing left to drive
                await session.execute(_RELEASE, held)
                return None
            return Lease(WorkflowRun(**row._mapping), await self._load_steps(session, run_id))

    async def release_lease(self, run_id: str, owner: str) -> None:
        async with transaction(self.sessions) as session:
            await session.execute(_RELEASE, {"run_id": run_id, "owner": owner})

    # -- run transitions (fenced) -------------------------------------------------------

    async def complete_run(
        self, run_id: str, owner: str, result: Any, *, completed: Sequence[Completed] = ()
    ) -> Wake | None:
        """Finish the run (with its last steps' results, `completed`, in the same transaction).

        The lease is given back by the same UPDATE: a finished run has nothing left to drive, so a
        doorbell rung meanwhile needs no answer. Returns its parent's wake-up if a waiting parent
        step resolved.
        """
        values = {"status": RunStatus.COMPLETED, "result": result, "finished_at": self.clock(), **_RELEASED}
        async with transaction(self.sessions) as session:
            run = await self._fence(session, run_id, owner, **values)
            await self._complete_steps(session, run, completed)
            await self._event(session, run, "workflow.completed", {})
            return await self._resolve_parent(session, run)

    async def mark_failing(self, run_id: str, owner: str, error: str, failure: Failure) -> None:
        async with transaction(self.sessions) as session:
            values = {"status": RunStatus.FAILING, "error": error, "failure": failure.as_dict()}
            await self._fence(session, run_id, owner, **values)

    async def fail_run(self, run_id: str, owner: str, error: str, failure: Failure, **details: Any) -> Wake | None:
        """Fail the run and give its lease back (see `complete_run`); its parent's wake-up, if any."""
        values = {"status": RunStatus.FAILED, "error": error, "failure": failure.as_dict(), **_RELEASED}
        async with transaction(self.sessions) as session:
            run = await self._fence(session, run_id, owner, finished_at=self.clock(), **values)
            await self._event(session, run, "workflow.failed", {"error": error, **details})
            return await self._resolve_parent(session, run)

    # -- step transitions (fenced) ------------------------------------------------------

    async def start_attempt(
        self,
        run_id: str,
        owner: str,
        *,
        position: int,
        name: str,
        kind: str,
        attempt: int,
        completed: Sequence[Completed] = (),
    ) -> None:
        """Record that an attempt began, so a crash in it still counts as an attempt.

        `completed`: results of this delivery's earlier steps, recorded in the same transaction
        (an inline step costs one transaction: the previous result, its event, this start and
        the lease extension; on Postgres, with at most one earlier result, one statement).
        """
        values = self._attempt_values(run_id, owner, position, name, StepKind(kind), attempt)
        if self.sqlite is not None:  # plain statements on the driver's connection
            await self._write_sqlite(functools.partial(write_start_attempt, completed), values)
            return
        if self.autocommit is not None and len(completed) <= 1:  # the common case, one statement
            await self._start_attempt_at_once(values, completed[0] if completed else None)
            return
        async with transaction(self.sessions) as session:
            run = await self._fence(session, run_id, owner, status=RunStatus.RUNNING)
            await self._complete_steps(session, run, completed)
            await self._start_step(session, run_id, position, name, StepKind(kind), attempt)

    async def complete_step(
        self, run_id: str, owner: str, *, position: int, result: Any, event: dict[str, Any], attempt: int | None = None
    ) -> None:
        """Record a step's result; with `attempt`, only if that attempt is still the step's current one."""
        await self.complete_steps(run_id, owner, [Completed(position, result, event, attempt)])

    async def complete_steps(self, run_id: str, owner: str, completed: Sequence[Completed]) -> None:
        """Record several steps' results in one transaction (see `complete_step`)."""
        async with transaction(self.sessions) as session:
            run = await self._fence(session, run_id, owner, status=RunStatus.RUNNING)
            await self._complete_steps(session, run, completed)

    async def schedule_retry(
        self, run_id: str, owner: str, *, position: int, failure: Failure, wake_at: datetime
    ) -> None:
        error, attempt = failure.error, failure.attempt
        async with transaction(self.sessions) as session:
            run = await self._fence(session, run_id, owner, status=RunStatus.SLEEPING)
            step = await self._require_step(session, run_id, position)
            step.status, step.error, step.wake_at = StepStatus.RETRY_SCHEDULED, error, wake_at
            step.error_type = failure.error_type
            base = {"step": step.name, "position": position, "attempt": attempt}
            await self._event(session, run, "step.failed", {**base, "error": error, "final": False})
            await self._event(session, run, "step.retry_scheduled", {**base, "next_attempt_at": wake_at.isoformat()})

    async def fail_step(self, run_id: str, owner: str, *, position: int, failure: Failure) -> None:
        error, attempt = failure.error, failure.attempt
        async with transaction(self.sessions) as session:
            run = await self._fence(session, run_id, owner)
            step = await self._require_step(session, run_id, position)
            step.status, step.error, step.finished_at = StepStatus.FAILED, error, self.clock()
            step.error_type = failure.error_type
            await self._event(
                session,
                run,
                "step.failed",
                {"step": step.name, "position": position, "attempt": attempt, "error": error, "final": True},
            )

    async def start_wait(
        self,
        run_id: str,
        owner: str,
        *,
        position: int,
        name: str,
        kind: str,
        status: StepStatus,
        wake_at: datetime | None,
        event_type: str,
        event: dict[str, Any],
    ) -> None:
        """Record a sleep or an outstanding call, and put the run to sleep/wait."""
        run_status = RunStatus.SLEEPING if status is StepStatus.SLEEPING else RunStatus.WAITING
        async with transaction(self.sessions) as session:
            run = await self._fence(session, run_id, owner, status=run_status)
            self._add_step(session, run_id, position, name, StepKind(kind), status, wake_at=wake_at)
            await self._event(session, run, event_type, {"step": name, "position": position, **event})

    async def save_call_message(self, run_id: str, owner: str, *, position: int, message_id: str) -> None:
        """Remember the call's message, unless its answer already came back (it may be that fast)."""
        async with transaction(self.sessions) as session:
            await self._fence(session, run_id, owner)
            await session.execute(
                update(WorkflowStep)
                .where(
                    WorkflowStep.run_id == run_id,
                    WorkflowStep.position == position,
                    WorkflowStep.status == StepStatus.CALLING,
                )
                .values(result={"message_id": message_id})
            )

    async def resolve_call(self, run_id: str, *, position: int, result: Any | None, error: str | None) -> bool:
        """Record a call's outcome once (not fenced: the callback may race a delivery)."""
        status = StepStatus.COMPLETED if error is None else StepStatus.FAILED
        error = None if error is None else f"CallFailed: {error}"
        async with transaction(self.sessions) as session:
            step = await self._settle_step(
                session, run_id, position, status, result=result, error=error, error_type=error and "CallFailed"
            )
            if step is None:
                return False
            run = (await session.execute(RUN_ROW, {"run_id": run_id})).one()
            payload = {"step": step.name, "position": position}
            if error is None:
                await self._event(session, run, "step.completed", {**payload, "status": result["status"]})
            else:
                await self._event(session, run, "step.failed", {**payload, "error": error, "final": True})
            return True
