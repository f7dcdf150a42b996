"""The object storage contract shared by every backend, and small helpers for callers.

Invariants every backend keeps:

- `put` streams: it holds at most one chunk (or one bounded buffer) in memory, computes the
  SHA-256 while it streams, and raises `TooLarge` as soon as more than `max_bytes` arrive. A
  `put` that fails for any reason (limit, error, cancellation) leaves nothing under the key and
  no partial data behind; a `put` that succeeds replaces any previous object atomically.
- Keys are safe relative paths (`validate_key`): segments of `[A-Za-z0-9._-]` joined by `/`,
  none empty, none starting with `.` (so `..` and hidden temp files are unreachable).
- `stat` returns the size and SHA-256 of the bytes really stored, or None when absent.
- `delete` is idempotent.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from app.storage.errors import InvalidKey, TooLarge

MAX_KEY_LENGTH = 512
DEFAULT_CHUNK_SIZE = 1 << 20
_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What is stored under a key: its size in bytes and the hex SHA-256 of its content."""

    key: str
    size: int
    sha256: str


@runtime_checkable
class ObjectStorage(Protocol):
    """Async object storage for uploaded documents (local files or an S3-compatible bucket)."""

    async def put(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        max_bytes: int,
        content_type: str = "application/octet-stream",
    ) -> StoredObject:
        """Stream `chunks` into `key`; raise `TooLarge` past `max_bytes`, keeping nothing."""
        ...

    async def stat(self, key: str) -> StoredObject | None:
        """Size and SHA-256 of the object, or None when no object has that key."""
        ...

    async def read(self, key: str) -> bytes:
        """The whole object (documents are at most tens of MB); `ObjectNotFound` if absent."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object; a missing key is not an error."""
        ...

    def local_path(self, key: str) -> AbstractAsyncContextManager[Path]:
        """`async with storage.local_path(key) as path`: a readable local file for the object,
        valid inside the block only; never write to it."""
        ...

    async def aclose(self) -> None:
        """Release connections and clients."""
        ...


def validate_key(key: str) -> str:
    """Return `key` unchanged if it is a safe relative key, else raise `InvalidKey`."""
    if not isinstance(key, str) or not key:
        raise InvalidKey("a storage key must be a non-empty string")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKey(f"a storage key must be at most {MAX_KEY_LENGTH} characters")
    for segment in key.split("/"):
        if not _SEGMENT.fullmatch(segment):
            raise InvalidKey(
                f"unsafe storage key {key!r}: use segments of letters, digits, '.', '_' and '-' "
                "joined by '/', none empty and none starting with '.'"
            )
    return key


@dataclass(slots=True)
class StreamDigest:
    """Running size and SHA-256 of a stream, enforcing `max_bytes` before a chunk is kept."""

    max_bytes: int
    size: int = 0
    _hash: hashlib._Hash = field(default_factory=hashlib.sha256)

    def add(self, chunk: bytes) -> None:
        """Account for `chunk`; raise `TooLarge` if it would take the total past the limit."""
        if self.size + len(chunk) > self.max_bytes:
            raise TooLarge(self.max_bytes)
        self.size += len(chunk)
        self._hash.update(chunk)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


async def iter_chunks(
    read: Callable[[int], Awaitable[bytes]], chunk_size: int = DEFAULT_CHUNK_SIZE
) -> AsyncIterator[bytes]:
    """Chunks from an async `read(n)` (e.g. FastAPI's `UploadFile.read`) until it returns b""."""
    while chunk := await read(chunk_size):
        yield chunk


async def peek(chunks: AsyncIterable[bytes], size: int) -> tuple[bytes, AsyncIterator[bytes]]:
    """The first `size` bytes of a stream (fewer if it is shorter), and the whole stream again.

    Lets a route sniff the file type before anything is stored:
    `head, chunks = await peek(chunks, 1024)`.
    """
    iterator = aiter(chunks)
    buffered: list[bytes] = []
    have = 0
    async for chunk in iterator:
        buffered.append(chunk)
        have += len(chunk)
        if have >= size:
            break
    head = b"".join(buffered)

    async def replay() -> AsyncIterator[bytes]:
        if head:
            yield head
        async for chunk in iterator:
            yield chunk

    return head[:size], replay()
