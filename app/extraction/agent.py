"""The Clinical Context Agent interface and its one error.

    CurawayError
    +-- ExtractionError      the agent could not produce an extraction; `retryable` says whether
                             running the step again may help (a timeout, a 5xx or 429 from the
                             LLM endpoint) or not (bad key or model, answers that stayed malformed
                             or truncated after the agent's own retries)

The workflow step maps a non-retryable `ExtractionError` to the runtime's `NonRetryableError`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from app.errors import CurawayError
from app.extraction.schemas import Extraction


class ExtractionError(CurawayError):
    """Extraction failed; `retryable` tells the workflow whether another attempt may succeed."""

    def __init__(self, message: str, *, retryable: bool, attempts: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.attempts = attempts


@runtime_checkable
class ClinicalContextAgent(Protocol):
    """Turns the text of a document's pages into an `Extraction`."""

    async def extract(self, pages: list[str]) -> Extraction:
        """Extract conditions, medications, allergies, labs, studies and the recommended procedure."""
        ...
