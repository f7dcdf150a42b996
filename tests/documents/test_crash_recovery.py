"""SIGKILL with ten documents in flight, restart with the settings `make run` ships: every
document reaches a final state within 60 s, and no step that had committed runs again."""

from __future__ import annotations

import asyncio
import json
import signal

import httpx
import pytest
from sqlalchemy import select, text

from app.db import create_engine, session_factory
from app.runtime.models import WorkflowRun, WorkflowStep
from tests.support.api import Api
from tests.support.pipeline import wait_document
from tests.support.processes import free_port, start_server, stop, wait_healthy

pytestmark = pytest.mark.slow

DOCUMENTS = 10


async def _committed_attempts(database_url: str, run_ids: list[str]) -> dict[tuple[str, int], int]:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            steps = await session.scalars(
                select(WorkflowStep).where(WorkflowStep.run_id.in_(run_ids), WorkflowStep.status == "completed")
            )
            return {(s.run_id, s.position): s.attempts for s in steps}
    finally:
        await engine.dispose()


async def _diagnose(database_url: str, run_ids: list[str]) -> str:
    """The runs and their steps (and, on Postgres, the database's sessions), for a failure message."""
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            lines = []
            for run in await session.scalars(select(WorkflowRun).where(WorkflowRun.id.in_(run_ids))):
                steps = await session.scalars(select(WorkflowStep).where(WorkflowStep.run_id == run.id))
                lines.append(f"{run.id} {run.status} lease={run.lease_owner} {run.lease_expires_at} upd={run.updated_at} "
                             + " ".join(f"{s.position}:{s.name}:{s.status}:{s.attempts}" for s in steps))
            if database_url.startswith("postgres"):
                rows = await session.execute(text(
                    "SELECT pid, state, wait_event, now() - xact_start, left(query, 120) FROM pg_stat_activity "
                    "WHERE datname = current_database()"
                ))
                lines += [repr(tuple(r)) for r in rows]
            return "\n".join(lines) + "\n"
    finally:
        await engine.dispose()


async def test_sigkill_with_ten_documents_in_flight_all_finish_within_60_s_of_restart(database_url, tmp_path):
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {"CURAWAY_TEST_SHIPPED": "1", "CURAWAY_TEST_WORKFLOWS": "pipelines",
           "CURAWAY_TEST_SETTINGS": json.dumps({"storage_dir": str(tmp_path / "storage")})}
    log = tmp_path / "server.log"
    process = start_server(port, database_url, log, env=env)
    try:
        await wait_healthy(base_url, process, log)
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            api = Api(client)
            _, case, token = await api.new_case("cabg")
            accepted = [(await api.upload(case["id"], token, "discharge_summary_cardiology.pdf")).json()
                        for _ in range(DOCUMENTS)]
            await asyncio.sleep(1.5)  # the fault's timing: the kill lands 1.5 s after the uploads
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            runs = [a["workflow_run_id"] for a in accepted]
            before = await _committed_attempts(database_url, runs)

            process = start_server(port, database_url, log, env=env)
            await wait_healthy(base_url, process, log)
            try:
                documents = await asyncio.gather(*(wait_document(api, a["document_id"], token, timeout=60) for a in accepted))
            except AssertionError:
                raise AssertionError(await _diagnose(database_url, runs) + log.read_text()[-6000:]) from None
        assert [d["status"] for d in documents] == ["analyzed"] * DOCUMENTS, log.read_text()[-3000:]
        after = await _committed_attempts(database_url, runs)
        assert {key: after[key] for key in before} == before  # no committed step ran again
    finally:
        stop(process)
