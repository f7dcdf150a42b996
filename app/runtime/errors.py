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

from app.errors import CurawayError


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
    def __init__(self, step: str, error: str, *, run_id: str | None = None) -> None:
        self.step = step
        self.error = error
        super().__init__(f"step {step!r} failed: {error}", run_id=run_id)


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
