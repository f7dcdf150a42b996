"""S3Storage against a real S3-compatible HTTP server (moto's server on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import os
import socket

import pytest

from app.storage import ObjectNotFound, StorageUnavailable, StoredObject, TooLarge, build_storage
from app.storage.s3 import S3Storage
from tests.storage.conftest import ACCESS_KEY, REGION, SECRET_KEY
from tests.storage.support import CountingStream, stream

KEY = "cases/case_1/documents/doc_1.pdf"


def object_keys(s3_client, bucket: str) -> list[str]:  # noqa: ANN001
    return [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])]


async def test_put_stat_read_delete_round_trip(s3_storage: S3Storage, s3_client, bucket: str) -> None:  # noqa: ANN001
    data = os.urandom(200_000)
    expected = StoredObject(KEY, len(data), hashlib.sha256(data).hexdigest())

    assert await s3_storage.put(KEY, stream(data), max_bytes=len(data), content_type="application/pdf") == expected
    assert await s3_storage.stat(KEY) == expected
    assert await s3_storage.read(KEY) == data
    head = s3_client.head_object(Bucket=bucket, Key=KEY)
    assert head["Metadata"]["sha256"] == expected.sha256
    assert head["ContentType"] == "application/pdf"

    await s3_storage.delete(KEY)

    assert await s3_storage.stat(KEY) is None
    assert object_keys(s3_client, bucket) == []


async def test_a_large_object_goes_up_in_parts_with_its_sha256(s3_storage: S3Storage) -> None:
    data = os.urandom(11 << 20)  # above the 5 MiB part size: multipart upload

    stored = await s3_storage.put(KEY, stream(data, 1 << 20), max_bytes=20 << 20)

    assert stored == StoredObject(KEY, len(data), hashlib.sha256(data).hexdigest())
    assert await s3_storage.stat(KEY) == stored
    assert await s3_storage.read(KEY) == data


async def test_local_path_downloads_to_a_temp_file_removed_afterwards(s3_storage: S3Storage) -> None:
    await s3_storage.put(KEY, stream(b"%PDF-1.7 body"), max_bytes=100)

    async with s3_storage.local_path(KEY) as path:
        assert path.suffix == ".pdf"
        assert path.read_bytes() == b"%PDF-1.7 body"

    assert not path.exists()


async def test_too_large_uploads_nothing(s3_storage: S3Storage, s3_client, bucket: str) -> None:  # noqa: ANN001
    chunks = CountingStream(count=50, chunk_size=1 << 20)

    with pytest.raises(TooLarge):
        await s3_storage.put(KEY, chunks, max_bytes=(3 << 20) + 1)

    assert chunks.pulled == 4
    assert await s3_storage.stat(KEY) is None
    assert object_keys(s3_client, bucket) == []
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


async def test_stat_computes_sha256_for_an_object_stored_without_it(
    s3_storage: S3Storage, s3_client, bucket: str  # noqa: ANN001
) -> None:
    s3_client.put_object(Bucket=bucket, Key="legacy/doc.pdf", Body=b"written by another tool")

    stat = await s3_storage.stat("legacy/doc.pdf")

    assert stat == StoredObject("legacy/doc.pdf", 23, hashlib.sha256(b"written by another tool").hexdigest())


async def test_missing_objects(s3_storage: S3Storage) -> None:
    assert await s3_storage.stat(KEY) is None
    with pytest.raises(ObjectNotFound):
        await s3_storage.read(KEY)
    with pytest.raises(ObjectNotFound):
        async with s3_storage.local_path(KEY):
            pass
    await s3_storage.delete(KEY)


async def test_a_missing_bucket_is_reported_as_unavailable(s3_endpoint: str) -> None:
    storage = S3Storage(s3_endpoint, "no-such-bucket", ACCESS_KEY, SECRET_KEY, REGION)
    try:
        with pytest.raises(StorageUnavailable, match="no-such-bucket"):
            await storage.put(KEY, stream(b"data"), max_bytes=100)
        with pytest.raises(StorageUnavailable, match="NoSuchBucket"):
            await storage.read(KEY)
    finally:
        await storage.aclose()


async def test_an_unreachable_endpoint_is_reported_as_unavailable() -> None:
    with socket.socket() as sock:  # a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    storage = build_storage(
        "s3",
        s3_endpoint_url=f"http://127.0.0.1:{port}",
        s3_bucket="docs",
        s3_access_key_id=ACCESS_KEY,
        s3_secret_access_key=SECRET_KEY,
    )
    try:
        with pytest.raises(StorageUnavailable, match="unreachable"):
            await storage.stat(KEY)
    finally:
        await storage.aclose()
