"""LocalStorage: streaming round trip, atomic replace, size limit, key safety."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest

from app.storage import (
    InvalidKey,
    LocalStorage,
    ObjectNotFound,
    StorageConfigError,
    StoredObject,
    TooLarge,
    build_storage,
)
from tests.storage.support import CountingStream, failing_stream, stream

KEY = "cases/case_1/documents/doc_1.pdf"


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*")] if root.exists() else []


async def test_put_stat_read_round_trip(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    data = os.urandom(300_000)
    expected = StoredObject(key=KEY, size=len(data), sha256=hashlib.sha256(data).hexdigest())

    assert await storage.put(KEY, stream(data), max_bytes=len(data)) == expected
    assert await storage.stat(KEY) == expected
    assert await storage.read(KEY) == data
    async with storage.local_path(KEY) as path:
        assert path.read_bytes() == data
    assert (tmp_path / KEY).read_bytes() == data


async def test_stat_hashes_what_is_on_disk(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    await storage.put(KEY, stream(b"original"), max_bytes=100)
    (tmp_path / KEY).write_bytes(b"changed behind our back")

    stat = await storage.stat(KEY)

    assert stat == StoredObject(KEY, 23, hashlib.sha256(b"changed behind our back").hexdigest())


async def test_put_replaces_an_existing_object_and_leaves_no_temp_files(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    await storage.put(KEY, stream(b"first version"), max_bytes=100)
    await storage.put(KEY, stream(b"second"), max_bytes=100)

    assert await storage.read(KEY) == b"second"
    assert [p.name for p in files_under(tmp_path) if p.is_file()] == ["doc_1.pdf"]


async def test_missing_object_stat_none_read_raises_delete_is_idempotent(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)

    assert await storage.stat(KEY) is None
    with pytest.raises(ObjectNotFound):
        await storage.read(KEY)
    with pytest.raises(ObjectNotFound):
        async with storage.local_path(KEY):
            pass
    await storage.delete(KEY)


async def test_delete_removes_the_file_and_empty_directories(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    await storage.put(KEY, stream(b"%PDF-1.7"), max_bytes=100)
    await storage.put("cases/case_2/a.pdf", stream(b"keep"), max_bytes=100)

    await storage.delete(KEY)

    assert await storage.stat(KEY) is None
    assert not (tmp_path / "store" / "cases" / "case_1").exists()
    assert await storage.read("cases/case_2/a.pdf") == b"keep"


async def test_exactly_max_bytes_is_accepted(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)

    stored = await storage.put(KEY, stream(b"a" * 1000, 100), max_bytes=1000)

    assert stored.size == 1000


async def test_too_large_stops_at_the_first_chunk_past_the_limit_and_leaves_nothing(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    chunks = CountingStream(count=100, chunk_size=1000)

    with pytest.raises(TooLarge) as raised:
        await storage.put(KEY, chunks, max_bytes=2500)

    assert chunks.pulled == 3
    assert raised.value.status_code == 413
    assert "limit" in raised.value.detail
    assert await storage.stat(KEY) is None
    assert files_under(tmp_path / "store") == []


async def test_too_large_keeps_the_previous_object(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    await storage.put(KEY, stream(b"old"), max_bytes=10)

    with pytest.raises(TooLarge):
        await storage.put(KEY, stream(b"x" * 11), max_bytes=10)

    assert await storage.read(KEY) == b"old"


async def test_a_failing_stream_leaves_nothing(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")

    with pytest.raises(ConnectionResetError):
        await storage.put(KEY, failing_stream(b"partial", ConnectionResetError()), max_bytes=100)

    assert files_under(tmp_path / "store") == []


async def test_a_cancelled_put_leaves_nothing(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    started = asyncio.Event()

    async def slow():
        yield b"first"
        started.set()
        await asyncio.sleep(3600)
        yield b"never"

    task = asyncio.create_task(storage.put(KEY, slow(), max_bytes=100))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert files_under(tmp_path / "store") == []


UNSAFE_KEYS = [
    "",
    "../outside.pdf",
    "cases/../../outside.pdf",
    "/etc/passwd",
    "cases//doc.pdf",
    "cases/doc.pdf/",
    ".hidden",
    "cases/./doc.pdf",
    "cases/.upload-x.part",
    "cases\\..\\doc.pdf",
    "C:/doc.pdf",
    "doc\x00.pdf",
    "cases/doc name.pdf",
    "x" * 513,
]


@pytest.mark.parametrize("key", UNSAFE_KEYS)
async def test_unsafe_keys_are_refused_by_every_operation(tmp_path: Path, key: str) -> None:
    storage = LocalStorage(tmp_path / "store")

    with pytest.raises(InvalidKey):
        await storage.put(key, stream(b"data"), max_bytes=100)
    with pytest.raises(InvalidKey):
        await storage.stat(key)
    with pytest.raises(InvalidKey):
        await storage.read(key)
    with pytest.raises(InvalidKey):
        await storage.delete(key)
    assert files_under(tmp_path) == []


async def test_a_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.pdf").write_bytes(b"secret")
    root = tmp_path / "store"
    root.mkdir()
    (root / "link").symlink_to(outside)
    storage = LocalStorage(root)

    with pytest.raises(InvalidKey):
        await storage.read("link/secret.pdf")


def test_build_storage_local(tmp_path: Path) -> None:
    storage = build_storage("local", storage_dir=tmp_path)

    assert isinstance(storage, LocalStorage)
    assert storage.root == tmp_path.resolve()


@pytest.mark.parametrize(
    ("backend", "values", "message"),
    [
        ("local", {}, "STORAGE_DIR"),
        ("s3", {"s3_endpoint_url": "http://127.0.0.1:9"}, "S3_BUCKET, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY"),
        ("ftp", {}, "unknown STORAGE_BACKEND"),
    ],
)
def test_build_storage_refuses_incomplete_settings(backend: str, values: dict[str, str], message: str) -> None:
    with pytest.raises(StorageConfigError, match=message):
        build_storage(backend, **values)  # type: ignore[arg-type]
