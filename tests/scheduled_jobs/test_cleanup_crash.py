"""Stale-session cleanup of 10,000 orphaned uploads: 100 batch steps; SIGKILL after batch 37 and a
restart with the settings `make run` ships finish the rest, no batch done twice, no stored file
left behind, none deleted while its row was still there."""

from __future__ import annotations

import asyncio
import json
import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from app.db import create_engine, session_factory, transaction
from app.documents.models import Document
from app.retention.models import CleanupBatch
from app.runtime.models import WorkflowRun, WorkflowStep
from tests.scheduled_jobs.support import days_ago, post_tick, rows, seed, wait_until
from tests.support.processes import free_port, start_server, stop, wait_healthy

pytestmark = pytest.mark.slow

CASES, STALE_PER_CASE = 100, 100  # 10,000 stale rows


async def _seed(sessions, storage: Path) -> tuple[set[str], set[str]]:  # noqa: ANN001
    """100 old cases, each with one analysed document (kept) and 100 orphaned uploads (stale),
    plus 50 fresh uploads (kept); every document has its file. Returns (stale keys, kept keys)."""
    old = days_ago(60)
    case_ids = await seed(
        sessions, prefix="old", cases=CASES, created=old, documents_per_case=1, status="analyzed", storage_dir=storage
    )
    fresh = await seed(
        sessions, prefix="fresh", cases=50, created=datetime.now(UTC), documents_per_case=1, storage_dir=storage
    )
    stale = []
    for case_id in case_ids:
        for j in range(STALE_PER_CASE):
            key = f"cases/{case_id}/stale-{j:03d}.pdf"
            stale.append(
                {
                    "id": f"{case_id}-stale-{j:03d}",
                    "case_id": case_id,
                    "filename": "a.pdf",
                    "content_type": "application/pdf",
                    "size_bytes": 4,
                    "sha256": "0" * 64,
                    "storage_key": key,
                    "status": "uploaded",
                    "issues": [],
                    "created_at": old,
                    "updated_at": old,
                }
            )
    written = asyncio.create_task(asyncio.to_thread(_write_files, storage, [row["storage_key"] for row in stale]))
    async with transaction(sessions) as session:
        for start in range(0, len(stale), 2000):
            await session.execute(insert(Document), stale[start : start + 2000])
    await written
    kept = {f"cases/{c}/{c}-doc-0.pdf" for c in case_ids + fresh}
    return {row["storage_key"] for row in stale}, kept


def _write_files(storage: Path, keys: list[str]) -> None:
    for key in keys:
        (storage / key).write_bytes(b"%PDF")


def _files(storage: Path) -> set[str]:
    return {str(path.relative_to(storage)) for path in storage.rglob("*.pdf")}


async def test_cleanup_of_10000_rows_runs_100_batches_and_survives_sigkill_after_batch_37(database_url, tmp_path):
    storage = tmp_path / "storage"
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    stale_keys, kept_keys = await _seed(sessions, storage)
    assert len(stale_keys) == 10_000

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        "CURAWAY_TEST_SHIPPED": "1",
        "CURAWAY_TEST_WORKFLOWS": "pipelines",
        "CURAWAY_TEST_SETTINGS": json.dumps({"storage_dir": str(storage)}),
    }
    log = tmp_path / "server.log"
    process = start_server(port, database_url, log, env=env)
    try:
        await wait_healthy(base_url, process, log)
        run_id = (await post_tick(base_url, "stale-session-cleanup", datetime(2026, 6, 1, 0, 30, tzinfo=UTC))).json()[
            "run_id"
        ]

        async def batches_done() -> int:
            async with sessions() as session:
                done = await session.scalar(
                    select(func.count()).select_from(CleanupBatch).where(CleanupBatch.run_id == run_id)
                )
            return done if done >= 37 else 0

        await wait_until(batches_done, timeout=120, what="37 cleanup batches")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

        killed_at = await batches_done()
        assert killed_at < 100 and (
            await rows(sessions, select(WorkflowRun.status).where(WorkflowRun.id == run_id))
        ) != ["completed"]
        remaining = {d.storage_key for d in await rows(sessions, select(Document))}
        assert remaining <= _files(storage), "a file was deleted while its row was still there"
        before = {
            (s.position, s.name): s.attempts
            for s in await rows(
                sessions, select(WorkflowStep).where(WorkflowStep.run_id == run_id, WorkflowStep.status == "completed")
            )
        }

        process = start_server(port, database_url, log, env=env)
        await wait_healthy(base_url, process, log)

        async def finished() -> bool:
            return (await rows(sessions, select(WorkflowRun.status).where(WorkflowRun.id == run_id))) == ["completed"]

        await wait_until(finished, timeout=150, what=f"the cleanup run to finish (killed after {killed_at} batches)")
    finally:
        stop(process)
        await asyncio.sleep(0)
    try:
        batches = await rows(
            sessions, select(CleanupBatch).where(CleanupBatch.run_id == run_id).order_by(CleanupBatch.batch)
        )
        assert [b.batch for b in batches] == list(range(1, 101))
        assert {(b.documents, b.cases) for b in batches} == {(100, 0)}
        assert all(b.files_deleted_at is not None for b in batches)
        assert sorted(k for b in batches for k in b.file_keys) == sorted(stale_keys)  # each row removed by one batch
        steps = await rows(
            sessions, select(WorkflowStep).where(WorkflowStep.run_id == run_id).order_by(WorkflowStep.position)
        )
        assert [s.name for s in steps] == ["plan"] + [f"batch-{i}" for i in range(1, 101)]
        assert {s.status for s in steps} == {"completed"}
        assert {(s.position, s.name): s.attempts for s in steps if (s.position, s.name) in before} == before
        assert {d.storage_key for d in await rows(sessions, select(Document))} == kept_keys
        assert _files(storage) == kept_keys  # no stale file left, no kept file touched
    finally:
        await engine.dispose()
