"""The S3 fixtures of the storage tests (moto's server on 127.0.0.1), for the cleanup on S3."""

from tests.storage.conftest import bucket, s3_client, s3_endpoint, s3_storage  # noqa: F401
