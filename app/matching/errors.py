"""Errors of requirement matching.

    CurawayError (app.errors)
    +-- EmbeddingError               an embedding backend could not produce vectors
        +-- EmbeddingUnavailableError  the local model's packages are not installed
        +-- EmbeddingApiError          the hosted API refused, failed or answered nonsense

A workflow step lets these propagate: the runtime retries the step, and its message says what to
fix (install a package, set a key, check the URL).
"""

from __future__ import annotations

from app.errors import CurawayError


class EmbeddingError(CurawayError):
    """An embedding backend could not produce vectors."""


class EmbeddingUnavailableError(EmbeddingError):
    """The local embedding model or its runtime packages are not installed."""


class EmbeddingApiError(EmbeddingError):
    """The hosted embeddings API failed; `status` is its HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
