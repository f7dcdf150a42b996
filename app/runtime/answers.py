"""How the runtime answers a QStash delivery: an `Outcome`, and when QStash should come back.

The router (`router.py`) turns an `Answer` into the HTTP status QStash acts on: 2xx for
DONE, IGNORED and QUEUED; 429 for BUSY and 503 for RETRY, each with `Retry-After`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    DONE = "done"  # the delivery did what it could; acknowledge it
    IGNORED = "ignored"  # nothing to do (finished or unknown run); acknowledge it
    QUEUED = "queued"  # another delivery holds the run and will drive it again; acknowledge it
    BUSY = "busy"  # the lease kept changing hands: 429 + Retry-After, QStash comes back later
    RETRY = "retry"  # the database or QStash failed under the delivery: 503, the run untouched


@dataclass(frozen=True, slots=True)
class Answer:
    """How a delivery is answered: its outcome and, when QStash should come back, when."""

    outcome: Outcome
    retry_after_s: int | None = None


DONE, IGNORED, QUEUED, RETRY = (
    Answer(Outcome.DONE),
    Answer(Outcome.IGNORED),
    Answer(Outcome.QUEUED),
    Answer(Outcome.RETRY, 1),
)
