"""Stale-session cleanup stages: a plan step, then batches of at most `CLEANUP_BATCH_SIZE` rows.

What is stale (docs/scheduled-jobs.md), both older than `CLEANUP_RETENTION_DAYS`:
- an *orphaned upload*: a document still `uploaded`, i.e. its upload was never confirmed by
  an analysis (the analysis moves every document it starts on to `processing` at once);
- a *stale intake session*: a case with no document at all and no event (no activity) since
  the cutoff, which includes cases emptied by removing their orphaned uploads.

The batches walk orphaned uploads by ID, then stale cases by ID; a batch fills up from the
cases once the uploads run out, and the cursor (`{"phase", "after"}`) is part of its result.

One batch, crash-safe and never done twice:
1. one transaction deletes the batch's rows (re-checking each is still stale) and records the
   batch in `cleanup_batches` with the storage keys those rows pointed at;
2. the files are deleted (local or S3; deleting twice is harmless);
3. the record is marked `files_deleted_at`.
A step run again after a crash finds its record, skips 1 and finishes 2-3. So rows go once, a
file goes only after no row points at it, and no file is left behind.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from app.cases import service as cases
from app.db import transaction, utcnow
from app.documents import service as documents
from app.retention import service as retention
from app.workflows.deps import PipelineDeps

DOCUMENTS, CASES = "documents", "cases"
START: dict[str, str] = {"phase": DOCUMENTS, "after": ""}
FILE_DELETES_AT_ONCE = 16


async def plan(deps: PipelineDeps) -> dict[str, Any]:
    """`plan`: the cutoff (now minus the retention), fixed for the whole run."""
    before = utcnow() - timedelta(days=deps.settings.cleanup_retention_days)
    return {"before": before.isoformat(), "batch_size": deps.settings.cleanup_batch_size}


async def run_batch(
    deps: PipelineDeps, run_id: str, batch: int, before_iso: str, cursor: dict[str, str], size: int
) -> dict[str, Any]:
    """`batch-N`: remove up to `size` stale rows after `cursor`, then their files."""
    before = datetime.fromisoformat(before_iso)
    async with transaction(deps.sessions) as session:
        record = await retention.done_batch(session, run_id=run_id, batch=batch)
        if record is None:
            record = await _delete_rows(session, run_id, batch, before, cursor, size)
        result = {"cursor": record.cursor, "documents": record.documents, "cases": record.cases}
        keys, finished = list(record.file_keys), record.files_deleted_at is not None
    if not finished:
        await _delete_files(deps, keys)
        async with transaction(deps.sessions) as session:
            await retention.files_deleted(session, run_id=run_id, batch=batch)
    async with deps.sessions() as session:
        result["more"] = bool(await _candidates(session, before, result["cursor"], 1))
    return result


async def _delete_files(deps: PipelineDeps, keys: list[str]) -> None:
    """Delete the files, `FILE_DELETES_AT_ONCE` at a time (S3 deletes are one request each)."""
    limit = asyncio.Semaphore(FILE_DELETES_AT_ONCE)

    async def delete(key: str) -> None:
        async with limit:
            await deps.storage.delete(key)

    await asyncio.gather(*(delete(key) for key in keys))


async def _candidates(session: Any, before: datetime, cursor: dict[str, str], limit: int) -> list[tuple[str, str]]:
    """Up to `limit` stale rows after `cursor`: (phase, id), uploads first, then cases."""
    found: list[tuple[str, str]] = []
    if cursor["phase"] == DOCUMENTS:
        ids = await documents.stale_uploads(session, before=before, after=cursor["after"], limit=limit)
        found = [(DOCUMENTS, i) for i in ids]
    if len(found) < limit:
        after = cursor["after"] if cursor["phase"] == CASES else ""
        ids = await cases.stale_cases(session, before=before, after=after, limit=limit - len(found))
        found += [(CASES, i) for i in ids]
    return found


async def _delete_rows(
    session: Any, run_id: str, batch: int, before: datetime, cursor: dict[str, str], size: int
) -> Any:
    found = await _candidates(session, before, cursor, size)
    document_ids = [i for phase, i in found if phase == DOCUMENTS]
    case_ids = [i for phase, i in found if phase == CASES]
    keys = await documents.delete_stale_uploads(session, document_ids=document_ids, before=before)
    removed_cases = await cases.delete_stale_cases(session, case_ids=case_ids, before=before)
    last = found[-1] if found else (cursor["phase"], cursor["after"])
    return retention.record_batch(
        session,
        run_id=run_id,
        batch=batch,
        cursor={"phase": last[0], "after": last[1]},
        documents=len(keys),
        cases=removed_cases,
        file_keys=keys,
    )
