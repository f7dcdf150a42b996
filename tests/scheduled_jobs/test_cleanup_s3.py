"""A cleanup batch on S3 (moto's server): the rows go once, then their objects; when the object
store fails after the rows are gone, the batch run again deletes exactly those objects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from app.config import Settings
from app.db import create_engine, session_factory
from app.documents.models import Document
from app.retention.models import CleanupBatch
from app.storage import StorageError
from app.storage.s3 import S3Storage
from app.workflows.scheduled_jobs import cleanup
from tests.scheduled_jobs.support import days_ago, rows, seed
from tests.storage.conftest import ACCESS_KEY, REGION, SECRET_KEY


@dataclass
class Deps:  # what the cleanup stage reads of PipelineDeps
    settings: Settings
    sessions: Any
    storage: Any


async def test_a_batch_on_s3_deletes_rows_once_and_their_objects_even_after_the_store_failed(
    database_url, s3_storage, s3_client, bucket
):
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    try:
        stale = await seed(sessions, prefix="old", cases=3, created=days_ago(60), documents_per_case=2)
        kept = await seed(sessions, prefix="new", cases=1, created=days_ago(1), documents_per_case=1)
        for document in await rows(sessions, select(Document)):
            s3_client.put_object(Bucket=bucket, Key=document.storage_key, Body=b"%PDF")
        plan = await cleanup.plan(Deps(settings, sessions, s3_storage))

        unreachable = S3Storage("http://127.0.0.1:9", bucket, ACCESS_KEY, SECRET_KEY, REGION)
        try:
            with pytest.raises(StorageError):  # the step fails after its rows were committed
                await cleanup.run_batch(
                    Deps(settings, sessions, unreachable), "wfr_x", 1, plan["before"], cleanup.START, 100
                )
        finally:
            await unreachable.aclose()
        assert len(await rows(sessions, select(Document))) == 1  # rows gone, objects still there
        assert len(s3_client.list_objects_v2(Bucket=bucket)["Contents"]) == 7

        done = await cleanup.run_batch(
            Deps(settings, sessions, s3_storage), "wfr_x", 1, plan["before"], cleanup.START, 100
        )
        assert (done["documents"], done["cases"], done["more"]) == (6, 0, True)  # the emptied cases are next
        cases = await cleanup.run_batch(
            Deps(settings, sessions, s3_storage), "wfr_x", 2, plan["before"], done["cursor"], 100
        )
        assert (cases["documents"], cases["cases"], cases["more"]) == (0, 3, False)
        left = [item["Key"] for item in s3_client.list_objects_v2(Bucket=bucket)["Contents"]]
        assert left == [f"cases/{kept[0]}/{kept[0]}-doc-0.pdf"]
        record, second = await rows(sessions, select(CleanupBatch).order_by(CleanupBatch.batch))
        assert record.files_deleted_at is not None and len(record.file_keys) == 6
        assert second.cursor == {"phase": "cases", "after": stale[-1]} and second.file_keys == []
    finally:
        await engine.dispose()
