"""Object storage in an S3-compatible bucket (Cloudflare R2 in production), through boto3.

boto3 is synchronous, so every call runs in a worker thread (`asyncio.to_thread`); one client
is shared (boto3 clients are thread-safe). `put` streams the upload into a spooled temp file
(memory up to `spool_bytes`, then disk) while it counts bytes and computes the SHA-256; only a
stream that stayed within `max_bytes` is sent, with boto3's managed transfer (multipart above
`part_size`, aborted by boto3 if it fails). So a `TooLarge` stream never reaches the bucket.
The SHA-256 travels as object metadata (`x-amz-meta-sha256`) and `stat` reads it with
`head_object`; for an object written without it, `stat` computes it from the content.

Client settings chosen for S3-compatible services: path-style addressing, SigV4, and request
checksums only when an operation requires them (R2 and others reject some of boto3's newer
default checksum headers).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Callable
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from app.storage.base import DEFAULT_CHUNK_SIZE, StoredObject, StreamDigest, validate_key
from app.storage.errors import ObjectNotFound, StorageUnavailable

T = TypeVar("T")
SHA256_METADATA = "sha256"
_MISSING = {"404", "NoSuchKey", "NotFound"}


class S3Storage:
    """Objects in one bucket of an S3-compatible service."""

    def __init__(
        self,
        endpoint_url: str,
        bucket: str,
        access_key_id: str,
        secret_access_key: str,
        region: str = "auto",
        *,
        spool_bytes: int = 1 << 20,
        part_size: int = 8 << 20,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 60.0,
    ) -> None:
        self.bucket = bucket
        self._spool_bytes = spool_bytes
        self._transfer = TransferConfig(multipart_threshold=part_size, multipart_chunksize=part_size, use_threads=False)
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=connect_timeout_s,
            read_timeout=read_timeout_s,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        session = boto3.session.Session(
            aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key, region_name=region
        )
        self._client = session.client("s3", endpoint_url=endpoint_url or None, config=config)

    async def put(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        max_bytes: int,
        content_type: str = "application/octet-stream",
    ) -> StoredObject:
        """Spool and hash the stream, then upload it with its SHA-256 as metadata."""
        validate_key(key)
        digest = StreamDigest(max_bytes)
        with tempfile.SpooledTemporaryFile(max_size=self._spool_bytes) as spool:
            async for chunk in chunks:
                digest.add(chunk)
                await asyncio.to_thread(spool.write, chunk)
            spool.seek(0)
            extra = {"Metadata": {SHA256_METADATA: digest.sha256}, "ContentType": content_type}
            upload = asyncio.ensure_future(
                self._call(
                    key, self._client.upload_fileobj, spool, self.bucket, key, ExtraArgs=extra, Config=self._transfer
                )
            )
            try:
                await asyncio.shield(upload)
            except asyncio.CancelledError:
                # The thread cannot be stopped: let it finish, then remove what it wrote.
                with contextlib.suppress(Exception):
                    await upload
                    await self.delete(key)
                raise
        return StoredObject(key=key, size=digest.size, sha256=digest.sha256)

    async def stat(self, key: str) -> StoredObject | None:
        validate_key(key)
        try:
            head = await self._call(key, self._client.head_object, Bucket=self.bucket, Key=key)
        except ObjectNotFound:
            return None
        sha256 = head.get("Metadata", {}).get(SHA256_METADATA)
        if not sha256:
            try:
                return await self._call(key, self._hash_remote, key)
            except ObjectNotFound:
                return None
        return StoredObject(key=key, size=int(head["ContentLength"]), sha256=sha256)

    async def read(self, key: str) -> bytes:
        validate_key(key)
        return await self._call(key, self._read_sync, key)

    async def delete(self, key: str) -> None:
        validate_key(key)
        await self._call(key, self._client.delete_object, Bucket=self.bucket, Key=key)

    @contextlib.asynccontextmanager
    async def local_path(self, key: str) -> AsyncIterator[Path]:
        """Download the object to a temp file, removed when the block ends."""
        validate_key(key)
        fd, name = tempfile.mkstemp(prefix="curaway-", suffix=PurePosixPath(key).suffix)
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as file:
                await self._call(key, self._client.download_fileobj, self.bucket, key, file, Config=self._transfer)
            yield path
        finally:
            path.unlink(missing_ok=True)

    async def aclose(self) -> None:
        await asyncio.to_thread(self._client.close)

    async def _call(self, key: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking boto3 call about `key` in a thread, translating its errors into ours."""
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _MISSING:
                raise ObjectNotFound(key) from exc
            raise StorageUnavailable(f"S3 bucket {self.bucket!r} refused the request ({code}): {exc}") from exc
        except (BotoCoreError, Boto3Error) as exc:
            raise StorageUnavailable(f"S3 storage is unreachable or failed: {exc}") from exc

    def _read_sync(self, key: str) -> bytes:
        body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
        with contextlib.closing(body):
            return body.read()

    def _hash_remote(self, key: str) -> StoredObject:
        body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
        digest, size = hashlib.sha256(), 0
        with contextlib.closing(body):
            for chunk in body.iter_chunks(DEFAULT_CHUNK_SIZE):
                digest.update(chunk)
                size += len(chunk)
        return StoredObject(key=key, size=size, sha256=digest.hexdigest())
