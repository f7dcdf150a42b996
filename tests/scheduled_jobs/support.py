"""Helpers for the scheduled-jobs tests: bulk seeding through the models, signed ticks, waits."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.cases.models import Case
from app.config import DEV_CURRENT_SIGNING_KEY
from app.db import transaction
from app.documents.models import Document, DocumentStatus
from app.patients.models import Patient
from app.runtime.models import Event, WorkflowRun
from app.runtime.signing import sign

OPS = {"Authorization": "Bearer dev-ops-token"}
JOB_SETTINGS: dict[str, Any] = {"embedding_warm_up": False}


def days_ago(days: float) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


async def seed(
    sessions: async_sessionmaker[AsyncSession],
    *,
    prefix: str,
    cases: int,
    created: datetime,
    documents_per_case: int = 0,
    status: str = DocumentStatus.UPLOADED,
    storage_dir: Path | None = None,
) -> list[str]:
    """`cases` cases of one patient each (IDs `<prefix>-case-00001`...), optionally with documents
    (and their files under `storage_dir`), inserted in bulk; returns the case IDs."""
    patients = [
        {"id": f"{prefix}-pat-{i:05d}", "name": "P", "email": "p@example.org", "created_at": created}
        for i in range(cases)
    ]
    case_rows = [
        {"id": f"{prefix}-case-{i:05d}", "patient_id": p["id"], "procedure": "cabg", "created_at": created}
        for i, p in enumerate(patients)
    ]
    docs = []
    for case in case_rows:
        for j in range(documents_per_case):
            key = f"cases/{case['id']}/{case['id']}-doc-{j}.pdf"
            docs.append(
                {
                    "id": f"{case['id']}-doc-{j}",
                    "case_id": case["id"],
                    "filename": "a.pdf",
                    "content_type": "application/pdf",
                    "size_bytes": 4,
                    "sha256": "0" * 64,
                    "storage_key": key,
                    "status": status,
                    "issues": [],
                    "created_at": created,
                    "updated_at": created,
                }
            )
            if storage_dir is not None:
                path = storage_dir / key
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"%PDF")
    async with transaction(sessions) as session:
        for table, rows in ((Patient, patients), (Case, case_rows), (Document, docs)):
            for start in range(0, len(rows), 2000):
                if rows[start : start + 2000]:
                    await session.execute(insert(table), rows[start : start + 2000])
    return [c["id"] for c in case_rows]


async def post_tick(base_url: str, name: str, tick: datetime) -> httpx.Response:
    """One tick of schedule `name`, signed as QStash signs it, with the embedded server's tick header."""
    url = f"{base_url}/schedules/{name}"
    headers = {
        "Upstash-Signature": sign(b"{}", url, DEV_CURRENT_SIGNING_KEY),
        "Content-Type": "application/json",
        "Upstash-Schedule-Tick": str(int(tick.timestamp())),
    }
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(url, content=b"{}", headers=headers)
    assert response.status_code == 200, response.text
    return response


async def wait_until(check: Callable[[], Awaitable[Any]], *, timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := await check()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        await asyncio.sleep(0.05)
    return result


async def rows(sessions: async_sessionmaker[AsyncSession], query: Any) -> list[Any]:
    async with sessions() as session:
        return list(await session.scalars(query))


async def events(sessions: async_sessionmaker[AsyncSession], type_: str) -> list[Event]:
    return await rows(sessions, select(Event).where(Event.type == type_).order_by(Event.id))


async def job_runs(sessions: async_sessionmaker[AsyncSession], name: str) -> list[WorkflowRun]:
    return await rows(
        sessions, select(WorkflowRun).where(WorkflowRun.schedule_id == name).order_by(WorkflowRun.created_at)
    )
