"""Persistence of what moves runs from outside a delivery: cancel, resume and stuck runs (RunStore's base).

`cancel_run` (ops, the API) stops a run and its unfinished children at their next step
boundary; `prepare_resume` reopens a failed run at the steps that failed, with its failed
children; `find_stuck` and `record_stuck` are the watchdog's view of runs nothing will move.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import transaction
from app.runtime import outbox
from app.runtime.models import (
    ON_FAILURE_POSITION,
    TERMINAL_RUN_STATUSES,
    RunStatus,
    StepKind,
    StepStatus,
    WorkflowRun,
    WorkflowStep,
    WorkflowWaiter,
)
from app.runtime.outbox import RunRef, Wake
from app.runtime.records import RunBase


class RecoveryStore(RunBase):
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
                await self._event(session, run, "workflow.cancelled", {})
                cancelled.append(RunRef(run.id, run.workflow, 0))
                children = await session.scalars(
                    select(WorkflowRun.id).where(
                        WorkflowRun.parent_run_id == current, WorkflowRun.status.not_in(TERMINAL_RUN_STATUSES)
                    )
                )
                pending.extend(children)
        return cancelled

    async def prepare_resume(self, run_id: str, *, key: str) -> tuple[WorkflowRun | None, list[Wake]]:
        """Reopen a failed run at every step that failed, keeping every completed step.

        Failed children (`ctx.invoke`) are reopened with it, and the parent's step waits for
        them again. Returns the run (None if unknown) and the outbox rows that restart the
        reopened runs (none if the run is not failed).
        """
        async with transaction(self.sessions) as session:
            run = await session.get(WorkflowRun, run_id)
            if run is None or run.status != RunStatus.FAILED:
                return run, []
            return run, await self._reopen(session, run, key)

    async def _reopen(self, session: AsyncSession, run: WorkflowRun, key: str) -> list[Wake]:
        wakes: list[Wake] = []
        reopened = []
        for step in list(await session.scalars(select(WorkflowStep).where(WorkflowStep.run_id == run.id))):
            if step.position == ON_FAILURE_POSITION or step.status == StepStatus.RUNNING:
                await session.delete(step)
            elif step.status == StepStatus.FAILED:
                reopened.append(step.position)
                child = await self._failed_child(session, run.id, step)
                if child is None:
                    await session.delete(step)
                    continue
                wakes += await self._reopen(session, child, key)
                step.status, step.result, step.error, step.finished_at = StepStatus.WAITING, None, None, None
        run.status, run.error, run.finished_at = RunStatus.PENDING, None, None
        run.lease_owner = run.lease_expires_at = None
        run.wake_pending = False  # its restart is published below
        run.resumes += 1
        await self._event(session, run, "workflow.resumed", {"reopened_positions": sorted(reopened)})
        wakes.append(await outbox.add(session, RunRef(run.id, run.workflow, 0), key, now=self.clock()))
        return wakes

    async def _failed_child(self, session: AsyncSession, run_id: str, step: WorkflowStep) -> WorkflowRun | None:
        if step.kind != StepKind.INVOKE:
            return None
        return await session.scalar(
            select(WorkflowRun).where(
                WorkflowRun.parent_run_id == run_id,
                WorkflowRun.parent_position == step.position,
                WorkflowRun.status == RunStatus.FAILED,
            )
        )

    async def find_stuck(self, *, older_than: timedelta, limit: int = 100) -> list[WorkflowRun]:
        """Unfinished runs that nothing will move, each for one of these reasons:

        - its lease lapsed while held: the delivery that held it died (crash, SIGKILL);
        - pending, running or failing, unleased, untouched for longer than `older_than`
          (a continuation lost or dead-lettered);
        - sleeping or waiting on a step whose `wake_at` passed more than `older_than` ago;
        - waiting, untouched for longer than `older_than`, with nothing left to wait for
          (a child finished, a call answered, a notify came, but the wake-up was lost).
        """
        now = self.clock()
        cutoff = now - older_than
        outstanding = [StepStatus.SLEEPING, StepStatus.RETRY_SCHEDULED, StepStatus.WAITING, StepStatus.CALLING]
        overdue_step = exists().where(
            WorkflowStep.run_id == WorkflowRun.id,
            WorkflowStep.status.in_(outstanding),
            WorkflowStep.wake_at < cutoff,
        )
        open_step = exists().where(WorkflowStep.run_id == WorkflowRun.id, WorkflowStep.status.in_(outstanding))
        untouched = WorkflowRun.updated_at < cutoff
        query = (
            select(WorkflowRun)
            .where(
                WorkflowRun.status.not_in(TERMINAL_RUN_STATUSES),
                or_(
                    and_(WorkflowRun.lease_owner.is_not(None), WorkflowRun.lease_expires_at < now),
                    and_(
                        WorkflowRun.lease_owner.is_(None),
                        or_(
                            and_(
                                WorkflowRun.status.in_([RunStatus.PENDING, RunStatus.RUNNING, RunStatus.FAILING]),
                                untouched,
                            ),
                            and_(WorkflowRun.status.in_([RunStatus.SLEEPING, RunStatus.WAITING]), overdue_step),
                            and_(WorkflowRun.status == RunStatus.WAITING, untouched, ~open_step),
                        ),
                    ),
                ),
            )
            .order_by(WorkflowRun.updated_at)
            .limit(limit)
        )
        async with self.sessions() as session:
            return list(await session.scalars(query))

    async def record_stuck(self, run_id: str) -> bool:
        """Record `workflow.stuck`, touch the run and drop a lapsed lease, unless it moved meanwhile."""
        now = self.clock()
        async with transaction(self.sessions) as session:
            result = await session.execute(
                update(WorkflowRun)
                .where(
                    WorkflowRun.id == run_id,
                    WorkflowRun.status.not_in(TERMINAL_RUN_STATUSES),
                    or_(WorkflowRun.lease_owner.is_(None), WorkflowRun.lease_expires_at < now),
                )
                .values(lease_owner=None, lease_expires_at=None, wake_pending=False, updated_at=now)
                .returning(WorkflowRun)
            )
            run = result.scalar_one_or_none()
            if run is None:
                return False
            await self._event(session, run, "workflow.stuck", {"status": run.status})
            return True
