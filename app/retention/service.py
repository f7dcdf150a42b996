"""Cleanup batches: find what a batch already did, record what it does (with its deletes)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.retention.models import CleanupBatch


async def done_batch(session: AsyncSession, *, run_id: str, batch: int) -> CleanupBatch | None:
    return await session.get(CleanupBatch, (run_id, batch))


def record_batch(
    session: AsyncSession,
    *,
    run_id: str,
    batch: int,
    cursor: dict[str, Any],
    documents: int,
    cases: int,
    file_keys: list[str],
) -> CleanupBatch:
    """Add the batch's record to the transaction that deletes its rows."""
    row = CleanupBatch(run_id=run_id, batch=batch, cursor=cursor, documents=documents, cases=cases, file_keys=file_keys)
    session.add(row)
    return row


async def files_deleted(session: AsyncSession, *, run_id: str, batch: int) -> None:
    await session.execute(
        update(CleanupBatch)
        .where(CleanupBatch.run_id == run_id, CleanupBatch.batch == batch, CleanupBatch.files_deleted_at.is_(None))
        .values(files_deleted_at=utcnow())
    )
