"""Persistence of how runs wait on each other and on the outside world (RunStore's base).

Children (`ctx.invoke`) and events (`ctx.wait_for_event` / `notify`); cancel, resume and stuck
runs are in recovery.py. Every resolution of a waiting step goes through one conditional UPDATE
(`_settle_step`, or the same UPDATE inside Postgres's `workflow_settle_and_wake`), so two racing
resolutions (a notify and a timeout, a child's end and a cancel) end exactly one way.

Wake-ups are coalesced with the run's doorbell, `workflow_runs.wake_pending` (`_wake`): a
resolution that finds the run leased rings the holder, which drives the run once more before
it lets go; one that finds it idle publishes a wake-up only if none is on its way already
(`wake_pending` set and not yet cleared). Whoever takes the lease (or answers the doorbell)
clears it in the transaction that reads the run's steps, so a resolution committed after that
publishes again and none is missed. Twenty children ending together cost their parent one
delivery, or none while it is being driven, instead of twenty.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Row, bindparam, delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import transaction
from app.runtime import outbox
from app.runtime.models import (
    TERMINAL_RUN_STATUSES,
    RunStatus,
    StepKind,
    StepStatus,
    WorkflowNotification,
    WorkflowRun,
    WorkflowStep,
    WorkflowWaiter,
)
from app.runtime.outbox import RunRef, Wake
from app.runtime.records import RUN_ROW, RUNS, RunBase, param
from app.runtime.sql import NOTIFY_PG, SETTLE_AND_WAKE_PG

WAITERS = WorkflowWaiter.__table__
_TAKE_WAITERS = delete(WAITERS).where(WAITERS.c.event_id == bindparam("event_id")).returning(*WAITERS.c)
_WAKE_STATE = (
    select(RUNS.c.status, RUNS.c.lease_owner, RUNS.c.lease_expires_at, RUNS.c.wake_pending)
    .where(RUNS.c.id == bindparam("run_id"))
    .with_for_update(skip_locked=True)
)
_SET_WAKE_PENDING = update(RUNS).where(RUNS.c.id == bindparam("run_id")).values(wake_pending=True)
_EXISTING_RUNS = select(RUNS.c.id).where(RUNS.c.id.in_(bindparam("ids", expanding=True)))
_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(hashtext(:key))")
_RING = (
    update(RUNS)
    .where(
        RUNS.c.id == bindparam("run_id"),
        RUNS.c.status.not_in(TERMINAL_RUN_STATUSES),
        RUNS.c.lease_owner.is_not(None),
        RUNS.c.lease_expires_at >= param(RUNS, "lease_expires_at", "now"),
    )
    .values(wake_pending=True)
)


def _notified(event_id: str) -> tuple[str, dict[str, Any]]:
    """The event of a waiting step settled by a notify of `event_id` (its type, its fields)."""
    return "step.completed", {"event_id": event_id, "timed_out": False}


@dataclass(frozen=True, slots=True)
class Lease:
    """A delivery's lease on a run: the run and its recorded steps, read when it was taken."""

    run: WorkflowRun
    steps: dict[int, WorkflowStep]


class Ring(StrEnum):
    """Why a delivery did not get the lease (`RunStore.acquire_or_ring`)."""

    RANG = "rang"  # the holder drives the run once more before letting go
    FINISHED = "finished"  # the run is finished or unknown


@dataclass(frozen=True, slots=True)
class ChildStart:
    """An invoke step to record and the child run it starts (`CoordinationStore.start_children`)."""

    position: int
    name: str
    child_id: str
    workflow: str
    payload: Any
    wait: bool  # the parent waits for the child's outcome (its step stays waiting until then)


class CoordinationStore(RunBase):
    # -- children (ctx.invoke) -----------------------------------------------------------

    async def start_children(self, run_id: str, owner: str, starts: Sequence[ChildStart]) -> list[Wake]:
        """Record these invoke steps and create their child runs, all in one transaction.

        The children of one `gather` of invokes start together: one fence of the parent, one
        INSERT per table. A child that exists already (idempotence) is left as it is. Returns
        the outbox rows that start the children created now.
        """
        async with transaction(self.sessions) as session:
            waits = any(start.wait for start in starts)
            parent = await self._fence(session, run_id, owner, status=RunStatus.WAITING if waits else RunStatus.RUNNING)
            ids = [start.child_id for start in starts]
            existing = set(await session.scalars(_EXISTING_RUNS, {"ids": ids}))
            new = [start for start in starts if start.child_id not in existing]
            labels = dict(parent.labels or {})
            children = await self._add_runs(
                session,
                [
                    dict(
                        id=start.child_id,
                        workflow=start.workflow,
                        payload=start.payload,
                        labels=labels,
                        parent_run_id=run_id if start.wait else None,
                        parent_position=start.position if start.wait else None,
                    )
                    for start in new
                ],
            )
            events = [
                (child, "workflow.started", {"workflow": child.workflow, "parent_run_id": run_id}) for child in children
            ]
            for start in starts:
                status = StepStatus.WAITING if start.wait else StepStatus.COMPLETED
                result = None if start.wait else {"run_id": start.child_id}
                self._add_step(session, run_id, start.position, start.name, StepKind.INVOKE, status, result=result)
                event_type = "workflow.waiting" if start.wait else "step.completed"
                payload = {"step": start.name, "position": start.position, "child_run_id": start.child_id}
                events.append((parent, event_type, payload))
            await self._events(session, events)
            refs = [RunRef(start.child_id, start.workflow, 0) for start in new]
            return await outbox.add_many(session, [(ref, "start") for ref in refs], now=self.clock())

    async def _resolve_parent(self, session: AsyncSession, run: WorkflowRun) -> Wake | None:
        """Settle the parent's waiting invoke step with this finished run; the parent's wake-up."""
        if run.parent_run_id is None or run.parent_position is None:
            return None
        failed = run.status != RunStatus.COMPLETED
        outcome = {"run_id": run.id, "status": run.status, "result": run.result, "error": run.error}
        _, wake = await self._settle_and_wake(
            session,
            run.parent_run_id,
            run.parent_position,
            StepStatus.FAILED if failed else StepStatus.COMPLETED,
            result=outcome,
            error=f"ChildRunFailed: child run {run.id} {run.status}: {run.error}" if failed else None,
            error_type="ChildRunFailed" if failed else None,
            event=("step.failed", {"child_run_id": run.id, "final": True})
            if failed
            else ("step.completed", {"child_run_id": run.id}),
            key=f"child-{run.id}",
        )
        return wake

    async def _settle_and_wake(
        self,
        session: AsyncSession,
        run_id: str,
        position: int,
        status: StepStatus,
        *,
        result: Any = None,
        error: str | None = None,
        error_type: str | None = None,
        event: tuple[str, dict[str, Any]],
        key: str,
    ) -> tuple[bool, Wake | None]:
        """Settle a waiting step (`_settle_step`), record its event and wake its run (`_wake`).

        `event` is the event's type and its fields besides the step's name and position; the
        wake-up's key is `key` and the run's generation. Returns whether the step was settled
        here (False: something else settled it first, and nothing is written) and the wake-up.
        """
        event_type, fields = event
        if self.autocommit is not None:  # Postgres: one statement (`SETTLE_AND_WAKE_PG`)
            values = {
                "run_id": run_id,
                "position": position,
                "status": status.value,
                "result": json.dumps(result),
                "error": error,
                "error_type": error_type,
                "now": self.clock(),
                "event_type": event_type,
                "event": json.dumps(fields),
                "key": key,
            }
            row = (await session.execute(SETTLE_AND_WAKE_PG, values)).one()
            return row.settled, self._sent(row, run_id, position)
        step = await self._settle_step(
            session, run_id, position, status, result=result, error=error, error_type=error_type
        )
        if step is None:
            return False, None
        run = (await session.execute(RUN_ROW, {"run_id": run_id})).one()
        await self._event(session, run, event_type, {"step": step.name, "position": position, **fields})
        return True, await self._wake(session, RunRef(run_id, run.workflow, position), f"{key}.r{run.resumes}")

    @staticmethod
    def _sent(row: Row[Any], run_id: str, position: int) -> Wake | None:
        """The wake-up a row of `SETTLE_AND_WAKE_PG` or `NOTIFY_PG` says was written to the outbox, if any."""
        if row.outbox_id is None:
            return None
        return Wake(row.outbox_id, RunRef(run_id, row.outbox_workflow, position), row.outbox_key)

    # -- wake-ups (the doorbell) -----------------------------------------------------------

    async def _wake(self, session: AsyncSession, ref: RunRef, key: str) -> Wake | None:
        """Make sure a delivery looks at `ref`'s run after this transaction; the wake-up to send, if any.

        None when the run's lease is live (the holder is rung: it drives the run once more
        before letting go), when a wake-up is already on its way (`wake_pending` on an idle
        run), or when the run is finished. Otherwise the doorbell is set and the wake-up written
        to the outbox, in this transaction. The run row is read `FOR UPDATE SKIP LOCKED`: if
        another transaction holds it (its holder writing, a cancel), this one does not wait
        for it (no lock-order cycle with a parent's own writes) and sends a wake-up anyway.
        """
        now = self.clock()
        row = (await session.execute(_WAKE_STATE, {"run_id": ref.run_id})).first()
        if row is not None:
            if row.status in TERMINAL_RUN_STATUSES or (row.wake_pending and row.lease_owner is None):
                return None
            live = row.lease_owner is not None and row.lease_expires_at >= now
            await session.execute(_SET_WAKE_PENDING, {"run_id": ref.run_id})
            if live or row.wake_pending:  # rung; or a lapsed lease's ring, which the watchdog answers
                return None
        return await outbox.add(session, ref, key, now=now)

    async def _ring(self, session: AsyncSession, run_id: str, now: datetime) -> bool:
        """Ring the doorbell of a run whose lease is live; False if no live lease is held."""
        rang = await session.execute(_RING, {"run_id": run_id, "now": now})
        return rang.rowcount == 1

    # -- events (ctx.wait_for_event / notify) ------------------------------------------

    async def start_wait_for_event(
        self, run_id: str, owner: str, *, position: int, name: str, event_id: str, deadline: datetime
    ) -> dict[str, Any] | None:
        """Consume a kept notification at once, or register the waiter. Returns the result if consumed."""
        async with transaction(self.sessions) as session:
            run = await self._fence(session, run_id, owner)
            await self._lock_event(session, event_id)
            kept = await session.scalar(
                select(WorkflowNotification)
                .where(WorkflowNotification.event_id == event_id, WorkflowNotification.expires_at > self.clock())
                .order_by(WorkflowNotification.id)
                .limit(1)
            )
            base = {"step": name, "position": position, "event_id": event_id}
            if kept is not None:
                result = {"data": kept.data, "timed_out": False}
                if kept.source is None:
                    await session.delete(kept)
                else:  # its sending step may be retried: keep it as an expired marker
                    kept.expires_at = self.clock()
                self._add_step(session, run_id, position, name, StepKind.WAIT, StepStatus.COMPLETED, result=result)
                await self._event(session, run, "step.completed", {**base, "timed_out": False})
                return result
            await session.execute(update(WorkflowRun).where(WorkflowRun.id == run_id).values(status=RunStatus.WAITING))
            self._add_step(session, run_id, position, name, StepKind.WAIT, StepStatus.WAITING, wake_at=deadline)
            session.add(
                WorkflowWaiter(
                    event_id=event_id,
                    run_id=run_id,
                    position=position,
                    workflow=run.workflow,
                    deadline=deadline,
                    created_at=self.clock(),
                )
            )
            await self._event(session, run, "workflow.waiting", {**base, "until": deadline.isoformat()})
            return None

    async def time_out_wait(self, run_id: str, owner: str, *, position: int) -> bool:
        """Resolve a wait as timed out, unless a notification won the race."""
        async with transaction(self.sessions) as session:
            run = await self._fence(session, run_id, owner)
            # The waiter row before the step's, in the order `notify` locks them (no deadlock).
            await session.execute(delete(WAITERS).where(WAITERS.c.run_id == run_id, WAITERS.c.position == position))
            step = await self._settle_step(
                session, run_id, position, StepStatus.COMPLETED, result={"data": None, "timed_out": True}
            )
            if step is None:  # a notify won the race (and removed the waiter itself)
                return False
            await self._event(
                session, run, "step.completed", {"step": step.name, "position": position, "timed_out": True}
            )
            return True

    async def notify(
        self, event_id: str, data: Any, *, keep_for: timedelta, source: str | None = None
    ) -> tuple[list[Wake], list[str]]:
        """Wake every waiter of `event_id`; with none, keep the notification for the first one.

        Returns the wake-ups to send and the IDs of the runs woken. A `source` (the `ctx.notify`
        step sending it) is recorded with the notification, so a retry of that step finds it
        and sends nothing twice (it gets the runs the first attempt woke).
        """
        if self.autocommit is not None:  # Postgres: one call (`NOTIFY_PG`)
            return await self._notify_at_once(event_id, data, keep_for=keep_for, source=source)
        async with transaction(self.sessions) as session:
            await self._lock_event(session, event_id)
            if source is not None:
                sent = await session.scalar(select(WorkflowNotification).where(WorkflowNotification.source == source))
                if sent is not None:
                    return [], list(sent.woken or [])
            waiters = sorted(await session.execute(_TAKE_WAITERS, {"event_id": event_id}), key=lambda row: row.id)
            wakes: list[Wake] = []
            run_ids: list[str] = []
            for waiter in waiters:
                settled, wake = await self._settle_and_wake(
                    session,
                    waiter.run_id,
                    waiter.position,
                    StepStatus.COMPLETED,
                    result={"data": data, "timed_out": False},
                    event=_notified(event_id),
                    key=f"notify-{waiter.position}",
                )
                if settled:
                    run_ids.append(waiter.run_id)
                    wakes += [wake] if wake is not None else []
            now = self.clock()
            if not run_ids or source is not None:  # kept for a waiter, or an expired marker of its source
                expires_at = now if run_ids else now + keep_for
                row = WorkflowNotification(event_id=event_id, data=data, source=source, woken=run_ids, created_at=now)
                row.expires_at = expires_at
                session.add(row)
            return wakes, run_ids

    async def _notify_at_once(
        self, event_id: str, data: Any, *, keep_for: timedelta, source: str | None
    ) -> tuple[list[Wake], list[str]]:
        """`notify` as one call of `workflow_notify` (Postgres, migration 0012): one round trip."""
        assert self.autocommit is not None
        now = self.clock()
        values = {
            "event_id": event_id,
            "data": json.dumps(data),
            "source": source,
            "result": json.dumps({"data": data, "timed_out": False}),  # the waiting step's
            "event": json.dumps(_notified(event_id)[1]),  # its `step.completed` event's fields
            "now": now,
            "keep_until": now + keep_for,
        }
        async with self.autocommit.connect() as connection:
            rows = list(await connection.execute(NOTIFY_PG, values))
        wakes = [wake for row in rows if (wake := self._sent(row, row.woken_run_id, row.woken_position)) is not None]
        return wakes, [row.woken_run_id for row in rows]

    async def prune_notifications(self, *, older_than: timedelta) -> None:
        """Delete notifications (and `ctx.notify` markers) expired for longer than `older_than`."""
        async with transaction(self.sessions) as session:
            cutoff = self.clock() - older_than
            await session.execute(delete(WorkflowNotification).where(WorkflowNotification.expires_at < cutoff))

    async def _lock_event(self, session: AsyncSession, event_id: str) -> None:
        """Serialise waits and notifies of one event ID (Postgres's `workflow_notify` takes the same lock)."""
        await self._lock(session, f"event:{event_id}")

    async def _lock(self, session: AsyncSession, key: str) -> None:
        """A transaction-long lock on `key` (Postgres; on SQLite, BEGIN IMMEDIATE already serialises)."""
        if session.bind.dialect.name == "postgresql":
            await session.execute(_ADVISORY_LOCK, {"key": key})
