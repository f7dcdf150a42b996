"""Stale-session cleanup: `--rows` orphaned uploads (each with its stored file) removed by one run.

Seeds `--rows` documents still `uploaded` and 60 days old (past CLEANUP_RETENTION_DAYS) over
cases of 100 documents, each case also holding one analysed document that stays, with a local
file per document; then one signed tick of `stale-session-cleanup` starts the run on the real
service (uvicorn in this process, the embedded QStash, shipped batch size and inline budget)
and the clock stops when the run is completed. Checked afterwards: every stale row and file
gone, every kept one there.

Prints a summary and, as its last line, one JSON object with rows, seconds, rows_per_s,
batch_steps, steps_per_run, messages_per_run (QStash messages published for the run) and files_left.

    .venv/bin/python bench/cleanup.py --db sqlite --rows 10000
    .venv/bin/python bench/cleanup.py --db postgres --dsn postgresql://postgres@127.0.0.1:5432/test --rows 100000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402

from app.cases.models import Case  # noqa: E402
from app.config import DEV_CURRENT_SIGNING_KEY  # noqa: E402
from app.db import transaction  # noqa: E402
from app.devqstash.models import EventState, QStashEvent  # noqa: E402
from app.documents.models import Document  # noqa: E402
from app.main import create_app  # noqa: E402
from app.patients.models import Patient  # noqa: E402
from app.runtime.models import WorkflowRun, WorkflowStep  # noqa: E402
from app.runtime.signing import sign  # noqa: E402
from app.serving import serve_in_loop  # noqa: E402
from bench.support import bench_settings, fresh_database  # noqa: E402

PER_CASE = 100
CHUNK = 5000


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--dsn",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="Postgres server for --db postgres (a scratch database is created on it)",
    )
    parser.add_argument(
        "--rows", type=int, default=10_000, help="stale rows (orphaned uploads with files) to remove (default 10000)"
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed for the run (default 3600)")
    return parser.parse_args(argv)


def _rows(count: int, created: datetime) -> tuple[list[dict], list[dict], list[dict], list[str], list[str]]:
    cases = max(1, -(-count // PER_CASE))
    patients = [
        {"id": f"bp-{i:06d}", "name": "B", "email": "b@example.org", "created_at": created} for i in range(cases)
    ]
    case_rows = [
        {"id": f"bc-{i:06d}", "patient_id": f"bp-{i:06d}", "procedure": "cabg", "created_at": created}
        for i in range(cases)
    ]
    documents, stale, kept = [], [], []
    for i in range(count + cases):
        case_id = case_rows[i % cases]["id"]
        keep = i >= count
        key = f"cases/{case_id}/bd-{i:07d}.pdf"
        (kept if keep else stale).append(key)
        documents.append(
            {
                "id": f"bd-{i:07d}",
                "case_id": case_id,
                "filename": "a.pdf",
                "content_type": "application/pdf",
                "size_bytes": 4,
                "sha256": "0" * 64,
                "storage_key": key,
                "status": "analyzed" if keep else "uploaded",
                "issues": [],
                "created_at": created,
                "updated_at": created,
            }
        )
    return patients, case_rows, documents, stale, kept


async def _seed(sessions, storage: Path, count: int) -> tuple[list[str], list[str]]:  # noqa: ANN001
    patients, cases, documents, stale, kept = _rows(count, datetime.now(UTC) - timedelta(days=60))

    def write() -> None:
        for key in stale + kept:
            path = storage / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"%PDF")

    files = asyncio.create_task(asyncio.to_thread(write))
    for model, rows in ((Patient, patients), (Case, cases), (Document, documents)):
        for start in range(0, len(rows), CHUNK):
            async with transaction(sessions) as session:
                await session.execute(insert(model), rows[start : start + CHUNK])
    await files
    return stale, kept


async def main(argv: list[str] | None = None) -> dict:
    args = _parse(argv)
    async with fresh_database(args.db, args.dsn) as url:
        with tempfile.TemporaryDirectory(prefix="curaway-bench-files-") as directory:
            storage = Path(directory)
            holder: dict = {}

            def build(base_url: str):  # noqa: ANN202
                settings = bench_settings(url, base_url, storage_dir=storage, embedding_warm_up=False)
                holder["app"] = create_app(settings)
                return holder["app"]

            async with serve_in_loop(build) as (base_url, _):
                sessions = holder["app"].state.services.sessions
                seeded = time.perf_counter()
                stale, kept = await _seed(sessions, storage, args.rows)
                print(
                    f"seeded {len(stale)} stale and {len(kept)} kept documents in {time.perf_counter() - seeded:.1f} s",
                    file=sys.stderr,
                )
                result = await _run(base_url, sessions, args.timeout)
            left = sum(1 for key in stale if (storage / key).exists())
            missing = sum(1 for key in kept if not (storage / key).exists())
    if left or missing:
        raise SystemExit(f"cleanup wrong: {left} stale files left, {missing} kept files missing")
    figures = {
        "db": args.db,
        "rows": args.rows,
        **result,
        "rows_per_s": round(args.rows / result["seconds"], 1),
        "files_left": left,
    }
    print(
        f"{args.db}: {args.rows} rows in {result['seconds']:.1f} s ({figures['rows_per_s']} rows/s), "
        f"{result['batch_steps']} batch steps, {result['messages_per_run']} QStash messages",
        file=sys.stderr,
    )
    print(json.dumps(figures))
    return figures


async def _run(base_url: str, sessions, timeout: float) -> dict:  # noqa: ANN001
    url = f"{base_url}/schedules/stale-session-cleanup"
    headers = {"Upstash-Signature": sign(b"{}", url, DEV_CURRENT_SIGNING_KEY), "Content-Type": "application/json"}
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(url, content=b"{}", headers=headers)
    response.raise_for_status()
    run_id = response.json()["run_id"]
    while True:
        async with sessions() as session:
            run = await session.get(WorkflowRun, run_id)
        if run.status in ("completed", "failed", "cancelled"):
            break
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"run {run_id} is {run.status} after {timeout} s")
        await asyncio.sleep(0.05)
    seconds = time.perf_counter() - started
    if run.status != "completed":
        raise SystemExit(f"run {run_id} ended {run.status}: {run.error}")
    async with sessions() as session:
        steps = await session.scalar(
            select(func.count()).select_from(WorkflowStep).where(WorkflowStep.run_id == run_id)
        )
        deliveries = await session.scalar(
            select(func.count())
            .select_from(QStashEvent)
            .where(QStashEvent.state == EventState.CREATED, QStashEvent.url.like("%/workflows/stale-session-cleanup"))
        )
    return {
        "seconds": round(seconds, 2),
        "batch_steps": run.result["batches"],
        "steps_per_run": steps,
        "messages_per_run": deliveries,
    }


if __name__ == "__main__":
    asyncio.run(main())
