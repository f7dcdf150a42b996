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
import contextlib
import inspect
import json
import logging
import random
import time
from collections.abc import Awaitable, Coroutine
from datetime import datetime, timedelta
from typing import Any

from app.logging import attempt_var, step_var
from app.runtime.config import RuntimeConfig
from app.runtime.context import CallSpec, FailureContext, RunSpec, WorkflowContext, current_step_key
from app.runtime.encoding import check_size, jsonable
from app.runtime.errors import (
    Failure,
    NonDeterminismError,
    NonRetryableError,
    StepFailedError,
    StepTimeoutError,
    Suspend,
    WorkflowError,
)
from app.runtime.hooks import RuntimeHooks, StepAttempt, call_hook
from app.runtime.models import ON_FAILURE_POSITION, RunStatus, StepKind, StepStatus, WorkflowRun, WorkflowStep
from app.runtime.outbox import Wake
from app.runtime.records import Clock, Completed, failed_step
from app.runtime.registry import Workflow
from app.runtime.store import RunStore
from app.runtime.waits import Publisher, Waits

log = logging.getLogger(__name__)

# Turns of the event loop the workflow gets to react to its last resolved operation before a
# delivery with only parked operations left is ended (nested gathers take a few turns each).
QUIESCENCE_TURNS = 50
# Turns of the event loop a finished step's result waits for the next step's start to carry it.
FLUSH_AFTER_TURNS = 8


class Driver:
    """Replays one run's workflow function for one delivery, under the run's lease."""

    def __init__(
        self,
        *,
        run: WorkflowRun,
        workflow: Workflow,
        steps: dict[int, WorkflowStep] | None = None,
        store: RunStore,
        publisher: Publisher,
        config: RuntimeConfig,
        owner: str,
        deps: Any,
        clock: Clock,
        hooks: RuntimeHooks | None = None,
    ) -> None:
        self.run = run
        self.hooks = hooks or RuntimeHooks()
        self.workflow = workflow
        self.history = steps  # the recorded steps, if the lease was taken with them
        self.steps: dict[int, WorkflowStep] = {}  # set by drive()
        self.store = store
        self.publisher = publisher
        self.config = config
        self.owner = owner
        self.deps = deps
        self.clock = clock
        self.started = time.monotonic()
        self.executed = 0  # steps whose body ran in this delivery
        self.finished = False  # the run completed or failed here: that write gave the lease back
        self.fatal: NonDeterminismError | None = None
        self.waits = Waits(self, store=store, publisher=publisher, clock=clock)
        self.notify_target = self._notify_once  # what `ctx.notify`'s step calls
        self.running: set[asyncio.Task[Any]] = set()  # ctx operations in flight
        self.changed: asyncio.Future[None] | None = None  # resolved when an operation ends
        self.closing = False  # the delivery decided to end; new operations park at once
        self.parked = 0  # ctx operations whose outcome is not known in this delivery
        self.stopped: BaseException | None = None  # why this delivery must stop (not the run's fault)
        # Results of steps that ran here, not yet written: they go with the delivery's next
        # write (the next step's start, the run's end), or on their own a few turns of the
        # event loop later if nothing else writes. Never published or built upon unwritten:
        # every other write and every hand-back writes them first (`flush`).
        self.pending: list[Completed] = []
        self.writing = asyncio.Lock()  # a step starts only once every earlier result is written
        self.flushing: set[asyncio.Task[None]] = set()  # `_flush_soon` tasks (kept referenced)

    # -- the run --------------------------------------------------------------------------

    async def drive(self) -> None:
        """Take the run as far as it can go in this delivery.

        Raises `LeaseLostError`/`RunCancelledError` when the run was taken away, and any
        infrastructure error (database, QStash) unchanged: those are never the run's fault, so
        the delivery ends without touching the run and QStash delivers it again.
        """
        try:
            await self._drive()
        except BaseException:
            with contextlib.suppress(Exception):  # keep what ran, if the database still lets us
                await self.flush()
            raise
        await self.flush()

    async def _drive(self) -> None:
        self.steps = self.history if self.history is not None else await self.store.load_steps(self.run.id)
        if self.run.status == RunStatus.FAILING:
            failure = Failure(**self.run.failure) if self.run.failure else Failure("Error", self.run.error or "failed")
            await self._run_on_failure(self.run.error or "failed", failure)
            return
        ctx = WorkflowContext(self, run_id=self.run.id, workflow=self.workflow.name, deps=self.deps)
        task = asyncio.ensure_future(self.workflow(ctx, self.workflow.parse_payload(self.run.payload)))
        finished = await self._until_blocked(task)
        if self.stopped is not None:
            raise self.stopped
        if not finished:
            return  # every branch is parked; the messages that bring the run back are out
        if task.exception() is not None:  # a step failure (or the workflow's own bug) escaped
            await self._fail(self.fatal or task.exception())
            return
        if self.fatal is None:
            self._check_history_consumed(ctx)
        if self.fatal is not None:
            await self._fail(self.fatal)
            return
        await self._complete(task.result())

    async def _complete(self, result: Any) -> None:
        try:
            encoded = self._encode(jsonable(result), what="workflow result")
        except WorkflowError as exc:
            await self._fail(exc)
            return
        async with self.writing:
            completed, self.pending = self.pending, []
            parent = await self.store.complete_run(self.run.id, self.owner, json.loads(encoded), completed=completed)
        self.finished = True
        log.info("workflow %s completed", self.workflow.name)
        call_hook(self.hooks.run_finished, self.run.id, self.workflow.name, RunStatus.COMPLETED)
        await self._wake_parent(parent)

    async def _until_blocked(self, task: asyncio.Future[Any]) -> bool:
        """Run the workflow until it returns (True) or can make no more progress (False).

        It can make no more progress when no operation is in flight, at least one is parked
        (its outcome is not known in this delivery), and the workflow did not move for a few
        turns of the event loop. The workflow is then cancelled where it waits; the parked
        operations have published what brings the run back. Stopping too early would only
        cost a replay, never correctness.
        """
        try:
            while not task.done():
                if self.stopped is not None:
                    return False
                if self.parked and not self.running and await self._stays_blocked(task):
                    return False
                self.changed = asyncio.get_running_loop().create_future()
                await asyncio.wait({task, self.changed}, return_when=asyncio.FIRST_COMPLETED)
            return True
        finally:
            self.closing = True
            await self._cancel(task)
            await self._settle()

    async def _cancel(self, task: asyncio.Future[Any]) -> None:
        """Cancel the blocked workflow where it waits (again, if it swallows the cancellation)."""
        for _ in range(QUIESCENCE_TURNS):
            if task.done():
                if not task.cancelled():
                    task.exception()  # retrieved: the outcome no longer matters
                return
            task.cancel()
            await asyncio.wait({task}, timeout=0)
        log.warning("the workflow ignores cancellation; its task is left parked")

    async def _stays_blocked(self, task: asyncio.Future[Any]) -> bool:
        for _ in range(QUIESCENCE_TURNS):
            await asyncio.sleep(0)
            if task.done() or self.running:
                return False
        return True

    async def _wake_parent(self, parent: Wake | None) -> None:
        if parent is not None:
            await self.publisher.flush([parent])

    def track(self, operation: Coroutine[Any, Any, Any]) -> Awaitable[Any]:
        """Run one ctx operation as a task; the workflow awaits the future this returns.

        The future gets the operation's result, or the step failure the workflow may handle
        (`StepFailedError`, `NonDeterminismError`). An operation whose outcome is not known in
        this delivery (a sleep, a call, a child, a retry later) *parks*: its future is never
        resolved, so whatever the workflow does with exceptions (`except Exception`,
        `gather(..., return_exceptions=True)`, `asyncio.wait`, `TaskGroup`) it cannot get past
        it. Anything else (a lost lease, a cancel, a database or QStash error) stops the
        delivery without the workflow ever seeing it.
        """
        outcome: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(self._operate(operation, outcome))
        self.running.add(task)
        task.add_done_callback(self._operation_done)
        return outcome

    def _operation_done(self, task: asyncio.Task[Any]) -> None:
        self.running.discard(task)
        if self.changed is not None and not self.changed.done():
            self.changed.set_result(None)

    async def _operate(self, operation: Coroutine[Any, Any, Any], outcome: asyncio.Future[Any]) -> None:
        if self.stopped is not None or self.closing:  # the delivery is ending: never resolves
            operation.close()
            return
        try:
            result = await operation
        except Suspend:
            self.parked += 1
        except (StepFailedError, NonDeterminismError) as exc:
            if not outcome.done():
                outcome.set_exception(exc)
        except Exception as exc:
            if self.stopped is None:
                self.stopped = exc
            if self.changed is not None and not self.changed.done():
                self.changed.set_result(None)
        else:
            if not outcome.done():
                outcome.set_result(result)

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
        failure = exc.failure if isinstance(exc, StepFailedError) else Failure.of(exc)
        log.warning("workflow %s failed: %s", self.workflow.name, reason)
        await self.flush()
        if self.workflow.on_failure is None:
            await self._failed(await self.store.fail_run(self.run.id, self.owner, reason, failure))
            return
        await self.store.mark_failing(self.run.id, self.owner, reason, failure)
        await self._run_on_failure(reason, failure)

    async def _run_on_failure(self, reason: str, failure: Failure) -> None:
        handler = self.workflow.on_failure
        assert handler is not None
        context = FailureContext(
            self.run.id, self.workflow.name, self.run.payload, reason, self.deps, **failure.as_dict()
        )
        spec = RunSpec(handler, (context,), self.workflow.on_failure_retries, None, None, True)
        self.executed = 0  # the handler always runs in the delivery that reaches it
        try:
            await self.run_step(ON_FAILURE_POSITION, "on_failure", spec, kind=StepKind.ON_FAILURE)
        except Suspend:
            await self._settle()
            return
        except StepFailedError as exc:
            await self.flush()
            await self._failed(
                await self.store.fail_run(self.run.id, self.owner, reason, failure, on_failure_error=exc.error)
            )
            return
        await self.flush()
        await self._failed(await self.store.fail_run(self.run.id, self.owner, reason, failure))

    async def _failed(self, parent: Wake | None) -> None:
        self.finished = True
        call_hook(self.hooks.run_finished, self.run.id, self.workflow.name, RunStatus.FAILED)
        await self._wake_parent(parent)

    # -- replay ---------------------------------------------------------------------------

    def recorded(self, position: int, name: str, kind: StepKind) -> WorkflowStep | None:
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

    async def hand_back(self, position: int, key: str, not_before: datetime | None = None) -> None:
        await self.flush()
        await self.publisher.publish_continue(self.run, position, key, not_before)
        raise Suspend

    async def _notify_once(self, event_id: str, data: Any) -> list[str]:
        """`ctx.notify`'s step body: a retry of the step finds the first attempt's notification."""
        return await self.publisher.notify(event_id, data, source=current_step_key.get())

    # -- steps that hand the run back (waits.py) ------------------------------------------

    async def sleep_step(self, position: int, name: str, *, seconds: float | None, until: datetime | None) -> Any:
        await self.flush()
        return await self.waits.sleep_step(position, name, seconds=seconds, until=until)

    async def call_step(self, position: int, name: str, spec: CallSpec) -> Any:
        await self.flush()
        return await self.waits.call_step(position, name, spec)

    async def wait_step(self, position: int, name: str, event_id: str, timeout: float) -> Any:
        await self.flush()
        return await self.waits.wait_step(position, name, event_id, timeout)

    async def invoke_step(self, position: int, name: str, workflow: str, payload: Any, wait: bool) -> Any:
        await self.flush()
        return await self.waits.invoke_step(position, name, workflow, payload, wait)

    # -- writing step results -------------------------------------------------------------

    async def flush(self) -> None:
        """Write the results of steps that ran here and are not written yet."""
        if not self.pending:
            return
        async with self.writing:
            completed, self.pending = self.pending, []
            if completed:
                await self.store.complete_steps(self.run.id, self.owner, completed)

    def _complete_later(self, done: Completed) -> None:
        """Keep a step's result for the next write; write it on its own if none comes soon."""
        self.pending.append(done)
        if len(self.pending) == 1:
            task = asyncio.ensure_future(self._flush_soon())
            self.flushing.add(task)
            task.add_done_callback(self.flushing.discard)

    async def _flush_soon(self) -> None:
        # A sequential workflow calls its next step within a few turns of the event loop;
        # anything slower (a long parallel step, workflow code that awaits something else)
        # must not hold a finished step's result and its event back.
        for _ in range(FLUSH_AFTER_TURNS):
            await asyncio.sleep(0)
            if not self.pending:
                return
        try:
            await self.flush()
        except Exception as exc:
            if self.stopped is None:
                self.stopped = exc
            if self.changed is not None and not self.changed.done():
                self.changed.set_result(None)

    # -- run steps ------------------------------------------------------------------------

    async def run_step(self, position: int, name: str, spec: RunSpec, *, kind: StepKind = StepKind.RUN) -> Any:
        step = self.recorded(position, name, kind)
        if step is not None and step.status == StepStatus.COMPLETED:
            return step.result
        if step is not None and step.status == StepStatus.FAILED:
            raise StepFailedError(failed_step(step), run_id=self.run.id)
        attempts = step.attempts if step is not None else 0
        retries = self.config.default_retries if spec.retries is None else spec.retries
        if step is not None and step.status == StepStatus.RUNNING and attempts > retries:
            error = f"attempt {attempts} never finished (the process crashed or lost the run's lease)"
            failure = Failure("AttemptLost", error, name, attempts)
            await self.flush()
            await self.store.fail_step(self.run.id, self.owner, position=position, failure=failure)
            raise StepFailedError(failure, run_id=self.run.id)
        if step is not None and step.status == StepStatus.RETRY_SCHEDULED:
            assert step.wake_at is not None
            if step.wake_at > self.clock():
                await self.hand_back(position, f"retry-{attempts}", step.wake_at)
        if not self._may_execute(spec.inline):
            await self.hand_back(position, f"step-{attempts}")
        return await self._observed_attempt(position, name, kind, spec, attempts + 1)

    async def _observed_attempt(self, position: int, name: str, kind: StepKind, spec: RunSpec, attempt: int) -> Any:
        """`_attempt`, reported to `hooks.step_attempted` with its outcome (hook point)."""
        inline, began, outcome = self.executed > 0, time.monotonic(), "error"
        tokens = step_var.set(name), attempt_var.set(attempt)  # on the attempt's log lines
        try:
            result = await self._attempt(position, name, kind, spec, attempt)
            outcome = "completed"
            return result
        except Suspend:
            outcome = "retry"
            raise
        except StepFailedError:
            outcome = "failed"
            raise
        finally:
            duration = time.monotonic() - began
            report = StepAttempt(self.run.id, self.workflow.name, name, attempt, outcome, duration, inline)
            call_hook(self.hooks.step_attempted, report)
            step_var.reset(tokens[0])
            attempt_var.reset(tokens[1])

    async def _attempt(self, position: int, name: str, kind: StepKind, spec: RunSpec, attempt: int) -> Any:
        retries = self.config.default_retries if spec.retries is None else spec.retries
        async with self.writing:  # with the results of the steps before it
            completed, self.pending = self.pending, []
            await self.store.start_attempt(
                self.run.id, self.owner, position=position, name=name, kind=kind, attempt=attempt, completed=completed
            )
        self.executed += 1
        began = time.monotonic()
        token = current_step_key.set(f"{self.run.id}:{position}")
        try:
            encoded = self._encode(await self._invoke(spec), what=f"step {name!r}")
        except Exception as exc:
            failure = Failure.of(exc, step=name, attempt=attempt)
            log.warning("step %s attempt %d failed: %s", name, attempt, failure.error)
            await self.flush()
            if isinstance(exc, NonRetryableError) or attempt > retries:
                await self.store.fail_step(self.run.id, self.owner, position=position, failure=failure)
                raise StepFailedError(failure, run_id=self.run.id) from exc
            wake_at = self.clock() + timedelta(seconds=self._backoff(spec, attempt))
            await self.store.schedule_retry(
                self.run.id, self.owner, position=position, failure=failure, wake_at=wake_at
            )
            await self.hand_back(position, f"retry-{attempt}", wake_at)
        finally:
            current_step_key.reset(token)
        duration_ms = round((time.monotonic() - began) * 1000, 3)
        result = json.loads(encoded)
        self._complete_later(Completed(position, result, {"attempt": attempt, "duration_ms": duration_ms}, attempt))
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
        return check_size(value, what=what, limit=self.config.max_step_output_bytes, run_id=self.run.id)


def _call_sync(fn: Any, args: tuple[Any, ...]) -> Any:
    return fn(*args)
