"""The runtime's errors.

WorkflowError (Exception)          carries the run ID in its message
+-- NonRetryableError              raised by step code: fail the step now, no retries
|   +-- StepOutputTooLarge         a step returned more than WORKFLOW_MAX_STEP_OUTPUT_BYTES
+-- StepFailedError                a step failed for good; raised to the workflow code,
|                                  which may catch it (compensation) or let the run fail
+-- StepTimeoutError               one attempt ran past its timeout (retried like any error)
+-- NonDeterminismError            replay met a step the recorded history does not have
+-- UnknownWorkflowError           a delivery or trigger named no registered workflow
+-- LeaseLostError                 another delivery took over this run; stop writing
+-- RunCancelledError              the run was cancelled under a delivery; stop writing

Suspend (BaseException)            control flow: the run hands back to QStash. Derived from
                                   BaseException so `except Exception` in a workflow can
                                   never swallow it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from app.errors import CurawayError


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a step or a run failed, in fields: the error's type and message, the step (None when
    the workflow code itself failed) and the attempt that failed."""

    error_type: str
    message: str
    step: str | None = None
    attempt: int | None = None

    @property
    def error(self) -> str:
        """`Type: message`, as step errors are recorded."""
        return f"{self.error_type}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, exc: BaseException, *, step: str | None = None, attempt: int | None = None) -> Failure:
        message = exc.message if isinstance(exc, WorkflowError) else str(exc)
        return cls(type(exc).__name__, message, step, attempt)

    @classmethod
    def recorded(cls, step: str, error: str | None, error_type: str | None, attempt: int | None) -> Failure:
        """The failure of a step as its row records it (`error` is `Type: message`)."""
        kind = error_type or "Error"
        return cls(kind, (error or "failed").removeprefix(f"{kind}: "), step, attempt)


class WorkflowError(CurawayError):
    """Base of the runtime's errors; `run_id` is prefixed to the message when known."""

    def __init__(self, message: str, *, run_id: str | None = None) -> None:
        self.run_id = run_id
        self.message = message
        super().__init__(f"[{run_id}] {message}" if run_id else message)


class NonRetryableError(WorkflowError):
    """Raise from step code to fail the step at once, without retries."""


class StepOutputTooLarge(NonRetryableError):
    pass


class StepFailedError(WorkflowError):
    """A step failed for good; `failure` says how, in fields."""

    def __init__(self, failure: Failure, *, run_id: str | None = None) -> None:
        assert failure.step is not None
        self.failure = failure
        self.step = failure.step
        self.error = failure.error
        super().__init__(f"step {failure.step!r} failed: {failure.error}", run_id=run_id)


class StepTimeoutError(WorkflowError):
    pass


class NonDeterminismError(WorkflowError):
    pass


class UnknownWorkflowError(WorkflowError):
    pass


class LeaseLostError(WorkflowError):
    pass


class Suspend(BaseException):  # noqa: N818 (control flow, not an error)
    """The run cannot go on in this delivery; a message will bring it back."""


class RunCancelledError(WorkflowError):
    """The run was cancelled while a delivery was driving it; the delivery stops."""
