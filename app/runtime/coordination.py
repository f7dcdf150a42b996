"""Persistence of how runs wait on each other and on the outside world (mixed into RunStore).

Children (`ctx.invoke`), events (`ctx.wait_for_event` / `notify`), cancellation, resuming and
the watchdog's view of stuck runs. Every resolution of a waiting step goes through
`_settle_step`, one conditional UPDATE, so two racing resolutions (a notify and a timeout, a
child's end and a cancel) end exactly one way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, exists, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import transaction
from app.runtime.models import (
    ON_FAILURE_POSITION,
    TERMINAL_RUN_STATUSES,
    RunStatus,
    StepKind,
    StepStatus,
    WorkflowNotification,
    WorkflowRun,
    WorkflowStep,
    WorkflowWaiter,
)

if TYPE_CHECKING:
    from app.runtime.store import RunStore as _Base
else:
    _Base = object


@dataclass(frozen=True, slots=True)
class RunRef:
    """Where a run continues: enough to publish its continuation."""

    run_id: str
    workflow: str
    position: int


class CoordinationStore(_Base):
    # -- children (ctx.invoke) -----------------------------------------------------------

    async def start_child(
        self,
        run_id: str,
        owner: str,
        *,
        position: int,
        name: str,
        child_id: str,
        workflow: str,
        payload: Any,
        wait: bool,
    ) -> WorkflowRun:
        """Record the invoke step and create the child run in one transaction (idempotent)."""
        async with transaction(self.sessions) as session:
            parent = await self._fence(session, run_id, owner, status=RunStatus.WAITING if wait else RunStatus.RUNNING)
            child = await session.get(WorkflowRun, child_id)
            if child is None:
                child = self._new_run(
                    child_id, workflow, payload, case_id=parent.case_id, document_id=parent.document_id
                )
                child.parent_run_id, child.parent_position = (run_id, position) if wait else (None, None)
                session.add(child)
                await session.flush()
                self._event(session, child, "workflow.started", {"workflow": workflow, "parent_run_id": run_id})
            status = StepStatus.WAITING if wait else StepStatus.COMPLETED
            result = None if wait else {"run_id": child_id}
            self._add_step(session, run_id, position, name, StepKind.INVOKE, status, result=result)
            event_type = "workflow.waiting" if wait else "step.completed"
            self._event(session, parent, event_type, {"step": name, "position": position, "child_run_id": child_id})
            return child

    async def _resolve_parent(self, session: AsyncSession, run: WorkflowRun) -> RunRef | None:
        if run.parent_run_id is None or run.parent_position is None:
            return None
        failed = run.status != RunStatus.COMPLETED
        outcome = {"run_id": run.id, "status": run.status, "result": run.result, "error": run.error}
        step = await self._settle_step(
            session,
            run.parent_run_id,
            run.parent_position,
            StepStatus.FAILED if failed else StepStatus.COMPLETED,
            result=outcome,
            error=f"child run {run.id} {run.status}: {run.error}" if failed else None,
        )
        if step is None:
            return None
        parent = await session.get(WorkflowRun, run.parent_run_id)
        assert parent is not None
        self._event(session, parent, "step.failed" if failed else "step.completed", {"step": step.name, "position": step.position, "child_run_id": run.id, "final": True} if failed else {"step": step.name, "position": step.position, "child_run_id": run.id})
        return RunRef(parent.id, parent.workflow, step.position)

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
                await session.delete(kept)
                self._add_step(session, run_id, position, name, StepKind.WAIT, StepStatus.COMPLETED, result=result)
                self._event(session, run, "step.completed", {**base, "timed_out": False})
                return result
            run.status = RunStatus.WAITING
            self._add_step(session, run_id, position, name, StepKind.WAIT, StepStatus.WAITING, wake_at=deadline)
            session.add(
                WorkflowWaiter(
                    event_id=event_id, run_id=run_id, position=position, workflow=run.workflow, deadline=deadline, created_at=self.clock()
                )
            )
            self._event(session, run, "workflow.waiting", {**base, "until": deadline.isoformat()})
            return None

    async def time_out_wait(self, run_id: str, owner: str, *, position: int) -> bool:
        """Resolve a wait as timed out, unless a notification won the race."""
        async with transaction(self.sessions) as session:
            run = await self._fence(session, run_id, owner)
            step = await self._settle_step(
                session, run_id, position, StepStatus.COMPLETED, result={"data": None, "timed_out": True}
            )
            if step is None:
                return False
            await session.execute(
                delete(WorkflowWaiter).where(WorkflowWaiter.run_id == run_id, WorkflowWaiter.position == position)
            )
            self._event(session, run, "step.completed", {"step": step.name, "position": position, "timed_out": True})
            return True

    async def notify(self, event_id: str, data: Any, *, keep_for: timedelta) -> list[RunRef]:
        """Wake every waiter of `event_id`; with none, keep the notification for the first one."""
        async with transaction(self.sessions) as session:
            await self._lock_event(session, event_id)
            waiters = list(
                await session.scalars(select(WorkflowWaiter).where(WorkflowWaiter.event_id == event_id).order_by(WorkflowWaiter.id))
            )
            woken: list[RunRef] = []
            for waiter in waiters:
                await session.delete(waiter)
                step = await self._settle_step(
                    session, waiter.run_id, waiter.position, StepStatus.COMPLETED, result={"data": data, "timed_out": False}
                )
                if step is None:
                    continue
                run = await session.get(WorkflowRun, waiter.run_id)
                assert run is not None
                self._event(session, run, "step.completed", {"step": step.name, "position": step.position, "event_id": event_id, "timed_out": False})
                woken.append(RunRef(run.id, run.workflow, step.position))
            if not woken:
                session.add(
                    WorkflowNotification(event_id=event_id, data=data, created_at=self.clock(), expires_at=self.clock() + keep_for)
                )
            return woken

    async def _lock_event(self, session: AsyncSession, event_id: str) -> None:
        """Serialise waits and notifies of one event ID (SQLite: BEGIN IMMEDIATE already does)."""
        if session.bind.dialect.name == "postgresql":
            await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"event:{event_id}"})

    # -- cancel, resume, stuck runs ------------------------------------------------------

    async def cancel_run(self, run_id: str) -> list[RunRef]:
        """Cancel the run and its unfinished children; returns what was cancelled."""
        cancelled: list[RunRef] = []
        pending = [run_id]
        async with transaction(self.sessions) as session:
            while pending:
                current = pending.pop()
                result = await session.execute(
                    update(WorkflowRun)
                    .where(WorkflowRun.id == current, WorkflowRun.status.not_in(TERMINAL_RUN_STATUSES))
                    .values(status=RunStatus.CANCELLED, finished_at=self.clock(), updated_at=self.clock())
                    .returning(WorkflowRun)
                )
                run = result.scalar_one_or_none()
                if run is None:
                    continue
                await session.execute(delete(WorkflowWaiter).where(WorkflowWaiter.run_id == current))
                self._event(session, run, "workflow.cancelled", {})
                cancelled.append(RunRef(run.id, run.workflow, 0))
                children = await session.scalars(
                    select(WorkflowRun.id).where(
                        WorkflowRun.parent_run_id == current, WorkflowRun.status.not_in(TERMINAL_RUN_STATUSES)
                    )
                )
                pending.extend(children)
        return cancelled

    async def prepare_resume(self, run_id: str) -> WorkflowRun | None:
        """Reopen a failed run at the step that failed, keeping every completed step."""
        async with transaction(self.sessions) as session:
            run = await session.get(WorkflowRun, run_id)
            if run is None or run.status != RunStatus.FAILED:
                return run
            steps = list(await session.scalars(select(WorkflowStep).where(WorkflowStep.run_id == run_id)))
            last = max((s for s in steps if s.position >= 0), key=lambda s: s.position, default=None)
            for step in steps:
                reopen = step.position == ON_FAILURE_POSITION or step.status == StepStatus.RUNNING
                if reopen or (step is last and step.status == StepStatus.FAILED):
                    await session.delete(step)
            run.status, run.error, run.finished_at = RunStatus.PENDING, None, None
            run.lease_owner = run.lease_expires_at = None
            self._event(session, run, "workflow.resumed", {"from_position": last.position if last else 0})
            return run

    async def find_stuck(self, *, older_than: timedelta, limit: int = 100) -> list[WorkflowRun]:
        """Unfinished, unleased runs with nothing due for longer than `older_than`."""
        now = self.clock()
        cutoff = now - older_than
        overdue_step = exists().where(
            WorkflowStep.run_id == WorkflowRun.id,
            WorkflowStep.status.in_([StepStatus.SLEEPING, StepStatus.RETRY_SCHEDULED, StepStatus.WAITING]),
            WorkflowStep.wake_at < cutoff,
        )
        query = (
            select(WorkflowRun)
            .where(
                or_(WorkflowRun.lease_expires_at.is_(None), WorkflowRun.lease_expires_at < now),
                or_(
                    and_(
                        WorkflowRun.status.in_([RunStatus.PENDING, RunStatus.RUNNING, RunStatus.FAILING]),
                        WorkflowRun.updated_at < cutoff,
                    ),
                    and_(WorkflowRun.status.in_([RunStatus.SLEEPING, RunStatus.WAITING]), overdue_step),
                ),
            )
            .order_by(WorkflowRun.updated_at)
            .limit(limit)
        )
        async with self.sessions() as session:
            return list(await session.scalars(query))

    async def record_stuck(self, run_id: str) -> bool:
        """Record `workflow.stuck` and touch the run, unless it moved meanwhile."""
        async with transaction(self.sessions) as session:
            run = await session.get(WorkflowRun, run_id)
            if run is None or run.status in TERMINAL_RUN_STATUSES or run.lease_owner is not None:
                return False
            run.updated_at = self.clock()
            self._event(session, run, "workflow.stuck", {"status": run.status})
            return True

