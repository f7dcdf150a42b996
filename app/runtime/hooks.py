"""`RuntimeHooks`: where the runtime tells observers (metrics, usage, logs) what it did.

The runtime calls these at a few named points and never waits on anything behind them: a hook
must be quick, synchronous and must not raise (an error in one is logged and ignored). The
default does nothing; `app.ops.hooks.OpsHooks` is the app's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StepAttempt:
    """One attempt of a `run` step, as it ended in this delivery."""

    run_id: str
    workflow: str
    step: str
    attempt: int
    outcome: str  # completed | retry (failed, another attempt is scheduled) | failed | error (infrastructure)
    duration_s: float
    inline: bool  # ran in a delivery that had already run a step (inline continuation saved a message)


class RuntimeHooks:
    """No-op observer; subclass and pass to `Runtime(hooks=...)`."""

    def step_attempted(self, attempt: StepAttempt) -> None:
        """A step attempt ended (called after its outcome was committed, or failed to be)."""

    def run_finished(self, run_id: str, workflow: str, status: str) -> None:
        """A run completed or failed (called after that was committed, in the process that drove it)."""


def call_hook(hook: object, *args: object) -> None:
    """Call `hook(*args)`; a failing observer never hurts the run."""
    try:
        hook(*args)  # type: ignore[operator]
    except Exception:
        log.exception("runtime hook %r failed", hook)
