"""Object storage in a local directory (development, tests, single-host deployments).

An object is the file `root/<key>`. `put` writes to a hidden temp file (`.upload-*.part`) in
the destination directory, fsyncs it and renames it over the key atomically, so a reader sees
the old object or the whole new one, never a partial file. Temp files start with `.`, which no
valid key segment may, so they can never be addressed as objects. Blocking file I/O runs in
worker threads; SHA-256 is computed while streaming in `put`, and recomputed from the bytes on
`stat`, so `stat` always describes what is really on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import BinaryIO

from app.storage.base import DEFAULT_CHUNK_SIZE, StoredObject, StreamDigest, validate_key
from app.storage.errors import InvalidKey, ObjectNotFound


class LocalStorage:
    """Objects as files under `root` (created on first write)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def path_for(self, key: str) -> Path:
        """The file that holds `key`; raises `InvalidKey` for unsafe keys."""
        path = (self.root / validate_key(key)).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise InvalidKey(f"storage key {key!r} leaves the storage directory")
        return path

    async def put(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        max_bytes: int,
        content_type: str = "application/octet-stream",
    ) -> StoredObject:
        """Stream into a temp file, then rename over `key`; on any failure remove the temp file."""
        path = self.path_for(key)
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        fd, tmp_name = await asyncio.to_thread(tempfile.mkstemp, dir=path.parent, prefix=".upload-", suffix=".part")
        tmp = Path(tmp_name)
        digest = StreamDigest(max_bytes)
        try:
            with os.fdopen(fd, "wb") as file:
                async for chunk in chunks:
                    digest.add(chunk)
                    await asyncio.to_thread(file.write, chunk)
                await asyncio.to_thread(_flush_and_sync, file)
            await asyncio.to_thread(os.replace, tmp, path)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(self._discard, tmp))
            raise
        await asyncio.to_thread(_sync_directory, path.parent)
        return StoredObject(key=key, size=digest.size, sha256=digest.sha256)

    async def stat(self, key: str) -> StoredObject | None:
        path = self.path_for(key)
        try:
            size, sha256 = await asyncio.to_thread(_hash_file, path)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        return StoredObject(key=key, size=size, sha256=sha256)

    async def read(self, key: str) -> bytes:
        path = self.path_for(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectNotFound(key) from exc

    async def delete(self, key: str) -> None:
        """Remove the file and any directories the removal leaves empty (up to `root`)."""
        path = self.path_for(key)
        await asyncio.to_thread(path.unlink, missing_ok=True)
        await asyncio.to_thread(self._prune_empty_dirs, path.parent)

    @contextlib.asynccontextmanager
    async def local_path(self, key: str) -> AsyncIterator[Path]:
        """The object's own file (no copy is made)."""
        path = self.path_for(key)
        if not await asyncio.to_thread(path.is_file):
            raise ObjectNotFound(key)
        yield path

    async def aclose(self) -> None:
        return None

    def _discard(self, tmp: Path) -> None:
        tmp.unlink(missing_ok=True)
        self._prune_empty_dirs(tmp.parent)

    def _prune_empty_dirs(self, directory: Path) -> None:
        while directory != self.root and directory.is_relative_to(self.root):
            try:
                directory.rmdir()
            except OSError:  # not empty, already gone, or not ours to remove
                return
            directory = directory.parent


def _flush_and_sync(file: BinaryIO) -> None:
    file.flush()
    os.fsync(file.fileno())


def _sync_directory(directory: Path) -> None:
    """Make the rename durable (best effort: not every platform can fsync a directory)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _hash_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        while chunk := file.read(DEFAULT_CHUNK_SIZE):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()
