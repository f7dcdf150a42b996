"""The records every run transition is made of: the lease fence, step rows, settling, events.

`RunBase` holds the session factory and the clock and the helpers that `CoordinationStore`
(coordination.py) and `RunStore` (store.py) build their one-transaction transitions from.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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


class RunBase:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, clock: Clock = utcnow) -> None:
        self.sessions = sessions
        self.clock = clock

    async def _fence(self, session: AsyncSession, run_id: str, owner: str, **values: Any) -> WorkflowRun:
        if "status" in values and values["status"] not in TERMINAL_RUN_STATUSES:
            # A failing run stays failing while its on_failure handler runs, sleeps or retries.
            failing = WorkflowRun.status == RunStatus.FAILING
            values["status"] = case((failing, RunStatus.FAILING.value), else_=str(values["status"]))
        result = await session.execute(
            update(WorkflowRun)
            .where(
                WorkflowRun.id == run_id,
                WorkflowRun.lease_owner == owner,
                WorkflowRun.status != RunStatus.CANCELLED,
            )
            .values(updated_at=self.clock(), **values)
            .returning(WorkflowRun)
        )
        run = result.scalar_one_or_none()
        if run is not None:
            return run
        status = await session.scalar(select(WorkflowRun.status).where(WorkflowRun.id == run_id))
        if status == RunStatus.CANCELLED:
            raise RunCancelledError("the run was cancelled", run_id=run_id)
        raise LeaseLostError("another delivery holds this run's lease", run_id=run_id)

    # -- helpers ------------------------------------------------------------------------
    def _new_run(self, run_id: str, workflow: str, payload: Any, *, labels: dict[str, str]) -> WorkflowRun:
        now = self.clock()
        return WorkflowRun(
            id=run_id,
            workflow=workflow,
            status=RunStatus.PENDING,
            payload=payload,
            labels=labels,
            created_at=now,
            updated_at=now,
        )

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
    ) -> WorkflowStep | None:
        """Move a waiting step to its outcome exactly once; None if something else already did."""
        outcome = await session.execute(
            update(WorkflowStep)
            .where(
                WorkflowStep.run_id == run_id,
                WorkflowStep.position == position,
                WorkflowStep.status.in_([StepStatus.WAITING, StepStatus.CALLING]),
            )
            .values(status=status, result=result, error=error, error_type=error_type, finished_at=self.clock())
            .returning(WorkflowStep)
        )
        return outcome.scalar_one_or_none()

    async def _step(self, session: AsyncSession, run_id: str, position: int) -> WorkflowStep | None:
        return await session.scalar(
            select(WorkflowStep).where(WorkflowStep.run_id == run_id, WorkflowStep.position == position)
        )

    async def _require_step(self, session: AsyncSession, run_id: str, position: int) -> WorkflowStep:
        step = await self._step(session, run_id, position)
        if step is None:
            raise LookupError(f"[{run_id}] step at position {position} is not recorded")
        return step

    def _event(self, session: AsyncSession, run: WorkflowRun, type_: str, payload: dict[str, Any]) -> None:
        session.add(
            Event(
                workflow_id=run.id,
                **{name: (run.labels or {}).get(name) for name in EVENT_LABELS},
                type=type_,
                payload=payload,
                created_at=self.clock(),
            )
        )


def failed_step(step: WorkflowStep) -> Failure:
    """The failure a failed step's row records."""
    return Failure.recorded(step.name, step.error, step.error_type, step.attempts)


def add_labels(session: AsyncSession, run_id: str, labels: dict[str, str]) -> None:
    """Index a new run's labels (`workflow_run_labels`)."""
    session.add_all(WorkflowRunLabel(run_id=run_id, key=key, value=value) for key, value in labels.items())
