"""Errors raised by object storage.

    StorageError (CurawayError)      anything storage raises on purpose
    +-- TooLarge (also HTTP 413)     an upload passed its byte limit; nothing was kept
    +-- InvalidKey                   a key that is not a safe relative path (a bug in the caller)
    +-- ObjectNotFound               read or copy of a key that does not exist
    +-- StorageConfigError           the backend cannot be built from the settings given
    +-- StorageUnavailable           the backend failed (disk error, S3 unreachable or refused)
"""

from __future__ import annotations

from app.errors import CurawayError, HTTPFacingError


class StorageError(CurawayError):
    """Base of every error object storage raises on purpose."""


class TooLarge(StorageError, HTTPFacingError):
    """The stream passed `max_bytes`; the partial upload has already been removed."""

    status_code = 413

    def __init__(self, max_bytes: int) -> None:
        super().__init__(
            f"The file is larger than the {_human(max_bytes)} limit. Please upload a smaller file, "
            "for example by splitting the document or scanning it at a lower resolution."
        )
        self.max_bytes = max_bytes


class InvalidKey(StorageError, ValueError):
    """The key is not a safe relative path of `[A-Za-z0-9._-]` segments joined by `/`."""


class ObjectNotFound(StorageError, LookupError):
    """No object is stored under the key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no stored object with key {key!r}")
        self.key = key


class StorageConfigError(StorageError):
    """The storage settings are incomplete or contradictory."""


class StorageUnavailable(StorageError):
    """The backend failed: a disk error, or the S3 service refused or could not be reached."""


def _human(n: int) -> str:
    """`20971520` -> `20 MB`; exact for the usual powers of 1024, one decimal otherwise."""
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"
