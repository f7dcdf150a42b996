"""The executor: drives one run for one delivery, by replaying its workflow function.

Invariants (DESIGN 3.2); each has a test in tests/runtime/:

1. A step's result is committed before anything that depends on it is published, and a
   delivery is acknowledged (2xx) only after its continuation is published. A crash in
   between leads to a redelivery that finds the step done and carries on.
2. A step is identified by its position in the run and its name (and kind); replay checks
   both and fails the run with `NonDeterminismError` when the code changed under it.
3. Deliveries are at-least-once. A delivery drives a run only while holding the run's lease
   (a row-level compare-and-set that works across processes on Postgres and SQLite); every
   write is fenced by that lease and steps are unique on (run_id, position), so duplicate or
   concurrent deliveries never execute a completed step again nor record it twice.
4. Step errors are retried per step by the runtime (default 3 retries, exponential backoff
   with jitter) through a delayed message, never by sleeping in the process. After the last
   retry the run fails, `on_failure` runs as a durable step, and `workflow.failed` is recorded.
5. Inline continuation: after a step completes, the same delivery goes on to the next `run`
   step while `WORKFLOW_INLINE_BUDGET_MS` lasts. Sleeps, calls and `inline=False` steps always
   hand back to QStash.
6. Failure isolation: plain (sync) step functions run in a worker thread, off the event loop;
   every attempt has a timeout.
7. Step results are JSON and at most `WORKFLOW_MAX_STEP_OUTPUT_BYTES`; messages carry only the
   run ID and the position to continue at.
8. The run's `wfr_` ID is on every event row (store), log line (`workflow_id_var`) and error.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import random
import time
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from app.runtime.context import CallSpec, FailureContext, RunSpec, WorkflowContext, current_step_key
from app.runtime.errors import (
    LeaseLostError,
    NonDeterminismError,
    NonRetryableError,
    RunCancelledError,
    StepFailedError,
    StepOutputTooLarge,
    StepTimeoutError,
    Suspend,
    WorkflowError,
)
from app.runtime.models import ON_FAILURE_POSITION, RunStatus, StepKind, StepStatus, WorkflowRun, WorkflowStep
from app.runtime.registry import Workflow
from app.runtime.store import Clock, RunRef, RunStore
from app.runtime.waits import SuspendingSteps

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    inline_budget_ms: int = 2000
    max_step_output_bytes: int = 65536
    step_timeout_s: float = 300.0
    default_retries: int = 3
    retry_base_delay_s: float = 2.0
    retry_max_delay_s: float = 3600.0
    lease_ttl_s: float = 30.0
    lease_wait_s: float = 2.0
    message_retries: int = 3
    notification_ttl_s: float = 86400.0
    watchdog_interval_s: float = 60.0
    watchdog_stuck_after_s: float = 300.0


class Publisher(Protocol):
    """How the driver hands a run back to QStash (implemented by `Runtime`)."""

    async def publish_continue(self, run: WorkflowRun, position: int, key: str, not_before: datetime | None) -> None: ...

    async def publish_call(self, run: WorkflowRun, position: int, spec: CallSpec) -> str: ...

    async def publish_ref(self, ref: RunRef, key: str) -> None: ...

    async def notify(self, event_id: str, data: Any) -> list[str]: ...

    def workflow_exists(self, name: str) -> bool: ...


class Driver(SuspendingSteps):
    """Replays one run's workflow function for one delivery, under the run's lease."""

    def __init__(
        self,
        *,
        run: WorkflowRun,
        workflow: Workflow,
        store: RunStore,
        publisher: Publisher,
        config: RuntimeConfig,
        owner: str,
        deps: Any,
        clock: Clock,
    ) -> None:
        self.run = run
        self.workflow = workflow
        self.steps: dict[int, WorkflowStep] = {}  # loaded by drive()
        self.store = store
        self.publisher = publisher
        self.config = config
        self.owner = owner
        self.deps = deps
        self.clock = clock
        self.started = time.monotonic()
        self.executed = 0  # steps whose body ran in this delivery
        self.fatal: NonDeterminismError | None = None
        self.running: set[asyncio.Task[Any]] = set()

    # -- the run --------------------------------------------------------------------------

    async def drive(self) -> None:
        self.steps = await self.store.load_steps(self.run.id)
        if self.run.status == RunStatus.FAILING:
            await self._run_on_failure(self.run.error or "failed")
            return
        ctx = WorkflowContext(self, run_id=self.run.id, workflow=self.workflow.name, deps=self.deps)
        try:
            result = await self.workflow(ctx, self.workflow.parse_payload(self.run.payload))
        except Suspend:
            await self._settle()
            return
        except (LeaseLostError, RunCancelledError):
            await self._settle()
            raise
        except Exception as exc:  # the workflow let a step failure (or its own bug) escape
            await self._settle()
            await self._fail(self.fatal or exc)
            return
        await self._settle()
        if self.fatal is None:
            self._check_history_consumed(ctx)
        if self.fatal is not None:
            await self._fail(self.fatal)
            return
        try:
            encoded = self._encode(result, what="workflow result")
        except StepOutputTooLarge as exc:
            await self._fail(exc)
            return
        parent = await self.store.complete_run(self.run.id, self.owner, json.loads(encoded))
        log.info("workflow %s completed", self.workflow.name)
        await self._wake_parent(parent)

    async def _wake_parent(self, parent: RunRef | None) -> None:
        if parent is not None:
            await self.publisher.publish_ref(parent, f"child-{self.run.id}")

    def track(self, operation: Coroutine[Any, Any, Any]) -> Awaitable[Any]:
        """Run one ctx operation as a task the delivery waits for before it ends.

        Parallel branches (`asyncio.gather`) keep going after a sibling suspends the run; the
        delivery must not give the lease back while any of them still writes.
        """
        task = asyncio.ensure_future(operation)
        self.running.add(task)
        task.add_done_callback(self.running.discard)
        return asyncio.shield(task)

    async def _settle(self) -> None:
        while self.running:
            await asyncio.gather(*list(self.running), return_exceptions=True)

    def _check_history_consumed(self, ctx: WorkflowContext) -> None:
        extra = sorted(p for p in self.steps if p >= ctx.positions_used)
        if extra:
            step = self.steps[extra[0]]
            self.fatal = NonDeterminismError(
                f"the workflow returned after {ctx.positions_used} steps, but the recorded history "
                f"has step {step.name!r} at position {step.position}: the code changed under a running run",
                run_id=self.run.id,
            )

    async def _fail(self, exc: BaseException) -> None:
        reason = exc.message if isinstance(exc, WorkflowError) else f"{type(exc).__name__}: {exc}"
        log.warning("workflow %s failed: %s", self.workflow.name, reason)
        if self.workflow.on_failure is None:
            await self._wake_parent(await self.store.fail_run(self.run.id, self.owner, reason))
            return
        await self.store.mark_failing(self.run.id, self.owner, reason)
        await self._run_on_failure(reason)

    async def _run_on_failure(self, reason: str) -> None:
        handler = self.workflow.on_failure
        assert handler is not None
        failure = FailureContext(self.run.id, self.workflow.name, self.run.payload, reason, self.deps)
        spec = RunSpec(handler, (failure,), self.workflow.on_failure_retries, None, None, True)
        self.executed = 0  # the handler always runs in the delivery that reaches it
        try:
            await self.run_step(ON_FAILURE_POSITION, "on_failure", spec, kind=StepKind.ON_FAILURE)
        except Suspend:
            await self._settle()
            return
        except StepFailedError as exc:
            await self._wake_parent(await self.store.fail_run(self.run.id, self.owner, reason, on_failure_error=exc.error))
            return
        await self._wake_parent(await self.store.fail_run(self.run.id, self.owner, reason))

    # -- replay ---------------------------------------------------------------------------

    def _recorded(self, position: int, name: str, kind: StepKind) -> WorkflowStep | None:
        if self.fatal is not None:
            raise self.fatal
        step = self.steps.get(position)
        if step is not None and (step.name != name or step.kind != kind):
            error = NonDeterminismError(
                f"step at position {position} is recorded as {step.kind} {step.name!r} but the code "
                f"now calls {kind} {name!r}: the workflow changed under a running run",
                run_id=self.run.id,
            )
            self.fatal = error
            raise error
        return step

    def _may_execute(self, inline: bool) -> bool:
        if self.executed == 0:
            return True
        elapsed_ms = (time.monotonic() - self.started) * 1000
        return inline and elapsed_ms < self.config.inline_budget_ms

    async def _hand_back(self, position: int, key: str, not_before: datetime | None = None) -> None:
        await self.publisher.publish_continue(self.run, position, key, not_before)
        raise Suspend

    # -- run steps ------------------------------------------------------------------------

    async def run_step(self, position: int, name: str, spec: RunSpec, *, kind: StepKind = StepKind.RUN) -> Any:
        step = self._recorded(position, name, kind)
        if step is not None and step.status == StepStatus.COMPLETED:
            return step.result
        if step is not None and step.status == StepStatus.FAILED:
            raise StepFailedError(name, step.error or "failed", run_id=self.run.id)
        attempts = step.attempts if step is not None else 0
        retries = self.config.default_retries if spec.retries is None else spec.retries
        if step is not None and step.status == StepStatus.RUNNING and attempts > retries:
            error = f"attempt {attempts} never finished (the process crashed or lost the run's lease)"
            await self.store.fail_step(self.run.id, self.owner, position=position, error=error, attempt=attempts)
            raise StepFailedError(name, error, run_id=self.run.id)
        if step is not None and step.status == StepStatus.RETRY_SCHEDULED:
            assert step.wake_at is not None
            if step.wake_at > self.clock():
                await self._hand_back(position, f"retry-{attempts}", step.wake_at)
        if not self._may_execute(spec.inline):
            await self._hand_back(position, f"step-{attempts}")
        return await self._attempt(position, name, kind, spec, attempts + 1)

    async def _attempt(self, position: int, name: str, kind: StepKind, spec: RunSpec, attempt: int) -> Any:
        retries = self.config.default_retries if spec.retries is None else spec.retries
        await self.store.start_attempt(self.run.id, self.owner, position=position, name=name, kind=kind, attempt=attempt)
        self.executed += 1
        began = time.monotonic()
        token = current_step_key.set(f"{self.run.id}:{position}")
        try:
            encoded = self._encode(await self._invoke(spec), what=f"step {name!r}")
        except Exception as exc:
            error = _describe(exc)
            log.warning("step %s attempt %d failed: %s", name, attempt, error)
            if isinstance(exc, NonRetryableError) or attempt > retries:
                await self.store.fail_step(self.run.id, self.owner, position=position, error=error, attempt=attempt)
                raise StepFailedError(name, error, run_id=self.run.id) from exc
            wake_at = self.clock() + timedelta(seconds=self._backoff(spec, attempt))
            await self.store.schedule_retry(
                self.run.id, self.owner, position=position, error=error, wake_at=wake_at, attempt=attempt
            )
            await self._hand_back(position, f"retry-{attempt}", wake_at)
        finally:
            current_step_key.reset(token)
        duration_ms = round((time.monotonic() - began) * 1000, 3)
        result = json.loads(encoded)
        await self.store.complete_step(
            self.run.id,
            self.owner,
            position=position,
            result=result,
            event={"attempt": attempt, "duration_ms": duration_ms},
        )
        return result

    async def _invoke(self, spec: RunSpec) -> Any:
        timeout = spec.timeout or self.config.step_timeout_s
        if inspect.iscoroutinefunction(spec.fn):
            call = spec.fn(*spec.args)
        else:
            call = asyncio.to_thread(_call_sync, spec.fn, spec.args)
        try:
            return await asyncio.wait_for(call, timeout)
        except TimeoutError as exc:
            raise StepTimeoutError(f"attempt timed out after {timeout:g} s", run_id=self.run.id) from exc

    def _backoff(self, spec: RunSpec, attempt: int) -> float:
        base = self.config.retry_base_delay_s if spec.backoff is None else spec.backoff
        delay = min(self.config.retry_max_delay_s, base * 2 ** (attempt - 1))
        return delay * random.uniform(0.75, 1.25)

    def _encode(self, value: Any, *, what: str) -> str:
        try:
            encoded = json.dumps(value, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise NonRetryableError(f"{what} is not JSON-serialisable: {exc}", run_id=self.run.id) from exc
        limit = self.config.max_step_output_bytes
        if len(encoded.encode()) > limit:
            raise StepOutputTooLarge(
                f"{what} is {len(encoded.encode())} bytes, over WORKFLOW_MAX_STEP_OUTPUT_BYTES={limit}; "
                "store large data (text, files) in the database or object storage and return its ID",
                run_id=self.run.id,
            )
        return encoded


def _call_sync(fn: Any, args: tuple[Any, ...]) -> Any:
    return fn(*args)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, NonRetryableError | StepTimeoutError):
        return f"{type(exc).__name__}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"
