"""`WorkflowContext`: the API a workflow function uses (DESIGN 3.1).

Each call claims the next position *synchronously*, before anything is awaited, so the
position of a step depends only on the order of calls in the workflow code. That keeps
replay deterministic even for `asyncio.gather(ctx.run(...), ctx.run(...))`.
The context only describes steps; the driver (`executor.py`) decides whether a step's
recorded result is returned, the step is executed now, or the run is suspended.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

current_step_key: ContextVar[str | None] = ContextVar("current_step_key", default=None)

DEFAULT_WAIT_TIMEOUT = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class RunSpec:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    retries: int | None
    backoff: float | None
    timeout: float | None
    inline: bool


@dataclass(frozen=True, slots=True)
class CallSpec:
    url: str
    method: str
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    retries: int = 0
    timeout: float | None = None


class Operations(Protocol):
    """What the context asks of the executor (`executor.Driver` implements it)."""

    notify_target: Callable[..., Awaitable[list[str]]]

    def track(self, operation: Any) -> Awaitable[Any]: ...

    def run_step(self, position: int, name: str, spec: RunSpec) -> Any: ...

    def sleep_step(self, position: int, name: str, *, seconds: float | None, until: datetime | None) -> Any: ...

    def call_step(self, position: int, name: str, spec: CallSpec) -> Any: ...

    def wait_step(self, position: int, name: str, event_id: str, timeout: float) -> Any: ...

    def invoke_step(self, position: int, name: str, workflow: str, payload: Any, wait: bool) -> Any: ...


class WorkflowContext:
    """Handed to a workflow function; every method is one durable step."""

    def __init__(self, driver: Operations, *, run_id: str, workflow: str, deps: Any) -> None:
        self._driver = driver
        self._next_position = 0
        self.run_id = run_id
        self.workflow = workflow
        self.deps = deps

    def _claim(self) -> int:
        position = self._next_position
        self._next_position += 1
        return position

    @property
    def positions_used(self) -> int:
        return self._next_position

    @property
    def idempotency_key(self) -> str:
        """A key stable across retries and replays of the current step (for outside systems)."""
        key = current_step_key.get()
        if key is None:
            raise RuntimeError("ctx.idempotency_key is only available inside a step")
        return key

    def run(
        self,
        name: str,
        fn: Callable[..., Any],
        *args: Any,
        retries: int | None = None,
        backoff: float | None = None,
        timeout: float | None = None,
        inline: bool = True,
    ) -> Awaitable[Any]:
        """A durable step: `fn(*args)` runs until it succeeds once; its JSON result is kept.

        Async functions run on the event loop; plain functions run in a worker thread, so
        CPU-bound step code never blocks other requests.
        """
        spec = RunSpec(fn, args, retries, backoff, timeout, inline)
        return self._driver.track(self._driver.run_step(self._claim(), name, spec))

    def sleep(self, name: str, duration: float | timedelta) -> Awaitable[None]:
        """Durable sleep: the run leaves the process and re-enters through a delayed message."""
        seconds = duration.total_seconds() if isinstance(duration, timedelta) else float(duration)
        return self._driver.track(self._driver.sleep_step(self._claim(), name, seconds=seconds, until=None))

    def sleep_until(self, name: str, when: datetime) -> Awaitable[None]:
        if when.tzinfo is None:
            raise ValueError("sleep_until needs a timezone-aware datetime")
        return self._driver.track(self._driver.sleep_step(self._claim(), name, seconds=None, until=when))

    def call(
        self,
        name: str,
        url: str,
        *,
        method: str = "POST",
        body: Any = None,
        headers: dict[str, str] | None = None,
        retries: int = 0,
        timeout: float | None = None,
    ) -> Awaitable[dict[str, Any]]:
        """A durable HTTP call made by QStash; returns `{status, headers, body}`.

        A non-2xx answer is returned, not raised. `retries` are QStash's retries of the call.
        """
        spec = CallSpec(url, method.upper(), body, dict(headers or {}), retries, timeout)
        return self._driver.track(self._driver.call_step(self._claim(), name, spec))

    def wait_for_event(
        self, name: str, event_id: str, *, timeout: float | timedelta = DEFAULT_WAIT_TIMEOUT
    ) -> Awaitable[dict[str, Any]]:
        """Suspend until `notify(event_id, data)` or the timeout; returns `{data, timed_out}`.

        A notification sent before the wait began is kept (for a while) and consumed here.
        """
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
        return self._driver.track(self._driver.wait_step(self._claim(), name, event_id, seconds))

    def notify(self, name: str, event_id: str, data: Any = None) -> Awaitable[list[str]]:
        """A step that wakes the runs waiting for `event_id`; returns the IDs of the runs woken."""
        spec = RunSpec(self._driver.notify_target, (event_id, data), None, None, None, True)
        return self._driver.track(self._driver.run_step(self._claim(), name, spec))

    def invoke(self, name: str, workflow: str, payload: Any, *, wait: bool = True) -> Awaitable[Any]:
        """Start a child run (its ID derives from this run and step, so it starts once).

        With `wait=True` the result is the child's result, or `StepFailedError` if it failed;
        with `wait=False` it is `{"run_id": ...}` at once.
        """
        if hasattr(payload, "model_dump"):
            payload = payload.model_dump(mode="json")
        return self._driver.track(self._driver.invoke_step(self._claim(), name, workflow, payload, wait))


@dataclass(frozen=True, slots=True)
class FailureContext:
    """Handed to a workflow's `on_failure` handler.

    `error` is the run's failure reason as recorded (`step 'ocr' failed: Type: message`); the
    fields after `deps` are the same in parts: the failed step (None when the workflow code
    itself raised), the error's type and message, and the attempt that failed.
    """

    run_id: str
    workflow: str
    payload: Any
    error: str
    deps: Any
    error_type: str = "Error"
    message: str = ""
    step: str | None = None
    attempt: int | None = None
