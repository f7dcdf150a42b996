"""Steps that hand the run back to QStash: sleeps, calls, waits for events, child runs.

Each of them records what the run waits for (one transaction, with its event), publishes
the message that will bring the run back (after the commit), and suspends. Whatever resolves
a wait (a delayed message, a call's callback, `notify`, a child's end) moves the step out of
its waiting status with one conditional UPDATE, so a race between two resolutions (a notify
and a timeout, say) ends exactly one way.

`Waits` is a part of `executor.Driver`: it gets the driver's replay (what is recorded, how to
hand back), the store, the publisher and the clock through its constructor.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from app.runtime.context import CallSpec
from app.runtime.coordination import ChildStart
from app.runtime.errors import Failure, StepFailedError, Suspend
from app.runtime.ids import derived_run_id
from app.runtime.models import StepKind, StepStatus, WorkflowRun, WorkflowStep
from app.runtime.outbox import Wake
from app.runtime.records import Clock, failed_step
from app.runtime.store import RunStore


class Publisher(Protocol):
    """How a run is handed back to QStash (implemented by `Runtime`)."""

    async def publish_continue(
        self, run: WorkflowRun, position: int, key: str, not_before: datetime | None
    ) -> None: ...

    async def publish_call(self, run: WorkflowRun, position: int, spec: CallSpec) -> str: ...

    async def flush(self, wakes: list[Wake]) -> None: ...

    async def notify(self, event_id: str, data: Any, *, source: str | None = None) -> list[str]: ...

    def workflow_exists(self, name: str) -> bool: ...


class Replay(Protocol):
    """The driver's view of the run being replayed."""

    run: WorkflowRun
    owner: str
    writing: asyncio.Lock  # held by every write of the driver that must follow the earlier ones

    def recorded(self, position: int, name: str, kind: StepKind) -> WorkflowStep | None: ...

    async def hand_back(self, position: int, key: str, not_before: datetime | None = None) -> None: ...


class Waits:
    def __init__(self, replay: Replay, *, store: RunStore, publisher: Publisher, clock: Clock) -> None:
        self.replay = replay
        self.store = store
        self.publisher = publisher
        self.clock = clock
        self._children: _ChildBatch | None = None  # invokes waiting to be written together

    @property
    def run(self) -> WorkflowRun:
        return self.replay.run

    @property
    def owner(self) -> str:
        return self.replay.owner

    # -- sleeps ---------------------------------------------------------------------------

    async def sleep_step(self, position: int, name: str, *, seconds: float | None, until: datetime | None) -> None:
        step = self.replay.recorded(position, name, StepKind.SLEEP)
        if step is None:
            wake_at = until if until is not None else self.clock() + timedelta(seconds=seconds or 0.0)
            await self.store.start_wait(
                self.run.id,
                self.owner,
                position=position,
                name=name,
                kind=StepKind.SLEEP,
                status=StepStatus.SLEEPING,
                wake_at=wake_at,
                event_type="workflow.sleeping",
                event={"until": wake_at.isoformat()},
            )
            await self.replay.hand_back(position, "wake", wake_at)
        assert step is not None
        if step.status == StepStatus.COMPLETED:
            return
        assert step.wake_at is not None
        if step.wake_at > self.clock():
            await self.replay.hand_back(position, "wake", step.wake_at)
        await self.store.complete_step(
            self.run.id, self.owner, position=position, result=None, event={"slept_until": step.wake_at.isoformat()}
        )

    # -- calls ----------------------------------------------------------------------------

    async def call_step(self, position: int, name: str, spec: CallSpec) -> dict[str, Any]:
        step = self.replay.recorded(position, name, StepKind.CALL)
        if step is not None and step.status == StepStatus.COMPLETED:
            return step.result
        if step is not None and step.status == StepStatus.FAILED:
            raise StepFailedError(failed_step(step), run_id=self.run.id)
        if step is None:
            await self.store.start_wait(
                self.run.id,
                self.owner,
                position=position,
                name=name,
                kind=StepKind.CALL,
                status=StepStatus.CALLING,
                wake_at=None,
                event_type="workflow.waiting",
                event={"url": spec.url, "method": spec.method},
            )
        if step is None or not (step.result or {}).get("message_id"):
            message_id = await self.publisher.publish_call(self.run, position, spec)
            await self.store.save_call_message(self.run.id, self.owner, position=position, message_id=message_id)
        raise Suspend

    # -- events ---------------------------------------------------------------------------

    async def wait_step(self, position: int, name: str, event_id: str, timeout: float) -> dict[str, Any]:
        step = self.replay.recorded(position, name, StepKind.WAIT)
        if step is None:
            deadline = self.clock() + timedelta(seconds=timeout)
            kept = await self.store.start_wait_for_event(
                self.run.id, self.owner, position=position, name=name, event_id=event_id, deadline=deadline
            )
            if kept is not None:
                return kept
            await self.replay.hand_back(position, "timeout", deadline)
        assert step is not None
        if step.status == StepStatus.COMPLETED:
            return step.result
        assert step.wake_at is not None
        if step.wake_at > self.clock():
            await self.replay.hand_back(position, "timeout", step.wake_at)
        if await self.store.time_out_wait(self.run.id, self.owner, position=position):
            return {"data": None, "timed_out": True}
        resolved = (await self.store.load_steps(self.run.id))[position]  # a notify won the race
        return resolved.result

    # -- child runs -----------------------------------------------------------------------

    async def invoke_step(self, position: int, name: str, workflow: str, payload: Any, wait: bool) -> Any:
        step = self.replay.recorded(position, name, StepKind.INVOKE)
        if step is not None and step.status == StepStatus.COMPLETED:
            return step.result["result"] if wait else step.result
        if step is not None and step.status == StepStatus.FAILED:
            raise StepFailedError(failed_step(step), run_id=self.run.id)
        if step is None:
            if not self.publisher.workflow_exists(workflow):
                failure = Failure("UnknownWorkflowError", f"no workflow named {workflow!r}", name)
                raise StepFailedError(failure, run_id=self.run.id)
            child_id = derived_run_id(self.run.id, str(position), name)
            await self._start_child(ChildStart(position, name, child_id, workflow, payload, wait))
            if not wait:
                return {"run_id": child_id}
        raise Suspend

    async def _start_child(self, start: ChildStart) -> None:
        """Record the invoke step and start its child; the invokes of one `gather` share a transaction.

        The first invoke of a batch waits one turn of the event loop (the other branches of a
        `gather` reach their invoke in that turn and join it), then for the driver's earlier
        writes, and writes the whole batch; the others wait for that write and share its outcome.
        """
        batch = self._children
        if batch is not None:
            batch.starts.append(start)
            await asyncio.shield(batch.written)
            return
        batch = self._children = _ChildBatch([start], asyncio.get_running_loop().create_future())
        try:
            await asyncio.sleep(0)
            async with self.replay.writing:
                self._children = None  # invokes from now on form the next batch
                wakes = await self.store.start_children(self.run.id, self.replay.owner, batch.starts)
        except BaseException as exc:
            if self._children is batch:
                self._children = None
            if isinstance(exc, asyncio.CancelledError):
                batch.written.cancel()
            else:
                batch.written.set_exception(exc)
                batch.written.exception()  # retrieved: the other invokes of the batch raise it, if any
            raise
        batch.written.set_result(None)
        await self.publisher.flush(wakes)


@dataclass(slots=True)
class _ChildBatch:
    starts: list[ChildStart]
    written: asyncio.Future[None]  # the batch's transaction committed (or failed)
