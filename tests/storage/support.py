"""Streams for storage tests: chunked bytes, and streams that fail or count what was pulled."""

from __future__ import annotations

from collections.abc import AsyncIterator


async def stream(data: bytes, chunk_size: int = 4096) -> AsyncIterator[bytes]:
    for start in range(0, len(data), chunk_size):
        yield data[start : start + chunk_size]


class CountingStream:
    """Yields `count` chunks of `chunk_size` bytes and records how many were pulled."""

    def __init__(self, count: int, chunk_size: int) -> None:
        self.count = count
        self.chunk_size = chunk_size
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.count):
            self.pulled += 1
            yield b"x" * self.chunk_size


async def failing_stream(data: bytes, error: Exception) -> AsyncIterator[bytes]:
    yield data
    raise error
