"""A real S3-compatible server for the storage tests: moto's server on 127.0.0.1, free port."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

from app.storage.s3 import S3Storage

ACCESS_KEY = "test-access-key"
SECRET_KEY = "test-secret-key"
REGION = "us-east-1"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_client(s3_endpoint: str):  # noqa: ANN201 - a boto3 client, as the outside party sees the bucket
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
    )
    yield client
    client.close()


@pytest.fixture
def bucket(s3_client) -> str:  # noqa: ANN001
    name = f"docs-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
async def s3_storage(s3_endpoint: str, bucket: str) -> AsyncIterator[S3Storage]:
    storage = S3Storage(s3_endpoint, bucket, ACCESS_KEY, SECRET_KEY, REGION, part_size=5 << 20)
    yield storage
    await storage.aclose()
