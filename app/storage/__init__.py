"""Object storage for uploaded documents: local files or an S3-compatible bucket (R2).

    storage = build_storage(settings.storage_backend, storage_dir=settings.storage_dir, ...)
    stored = await storage.put(key, iter_chunks(upload.read), max_bytes=settings.max_upload_bytes)

See `app.storage.base` for the contract every backend keeps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from app.storage.base import ObjectStorage, StoredObject, StreamDigest, iter_chunks, peek, validate_key
from app.storage.errors import (
    InvalidKey,
    ObjectNotFound,
    StorageConfigError,
    StorageError,
    StorageUnavailable,
    TooLarge,
)
from app.storage.local import LocalStorage

__all__ = [
    "InvalidKey",
    "LocalStorage",
    "ObjectNotFound",
    "ObjectStorage",
    "StorageConfigError",
    "StorageError",
    "StorageUnavailable",
    "StoredObject",
    "StreamDigest",
    "TooLarge",
    "build_storage",
    "iter_chunks",
    "peek",
    "validate_key",
]


def build_storage(
    backend: Literal["local", "s3"],
    *,
    storage_dir: Path | str | None = None,
    s3_endpoint_url: str = "",
    s3_bucket: str = "",
    s3_access_key_id: str = "",
    s3_secret_access_key: str = "",
    s3_region: str = "auto",
) -> ObjectStorage:
    """The backend named by `backend`, built from the matching settings values.

    `s3_endpoint_url` may be empty only for AWS itself; credentials are always required (no
    lookup of ambient AWS credentials, which could reach an instance-metadata endpoint).
    """
    if backend == "local":
        if not storage_dir:
            raise StorageConfigError("STORAGE_DIR must be set for STORAGE_BACKEND=local")
        return LocalStorage(Path(storage_dir))
    if backend == "s3":
        missing = [
            name
            for name, value in (
                ("S3_BUCKET", s3_bucket),
                ("S3_ACCESS_KEY_ID", s3_access_key_id),
                ("S3_SECRET_ACCESS_KEY", s3_secret_access_key),
            )
            if not value
        ]
        if missing:
            raise StorageConfigError(f"STORAGE_BACKEND=s3 needs {', '.join(missing)}")
        from app.storage.s3 import S3Storage  # boto3 is imported only when S3 is used

        return S3Storage(s3_endpoint_url, s3_bucket, s3_access_key_id, s3_secret_access_key, s3_region or "auto")
    raise StorageConfigError(f"unknown STORAGE_BACKEND {backend!r}: use 'local' or 's3'")
