"""SIGKILL at every boundary of a step, with the lease and claim settings we ship.

A five-step run, one step per delivery, is killed on the third step: when its delivery arrives
(before the attempt is recorded), inside the step's body, after the step's commit but before its
continuation is published, and after the publish but before the delivery's 2xx. Each case runs
in a process and database of its own, all four at once; each process is started again as soon
as it died. Every run completes, and each step whose commit happened ran exactly once (the
killed body runs again: steps are at-least-once until they commit).

The run killed inside a step's body still holds its lease: the redelivered message finds it
held, and only the watchdog, once the lease lapsed, moves the run on. That is the one stuck
run ops must hear of: its `workflow.stuck` event becomes an `alert.stuck_run` (issue 12).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from app.main import build_services
from app.runtime.models import Event, WorkflowRun
from tests.support.process_server import WORKFLOWS
from tests.support.processes import free_port, start_server, stop, wait_healthy
from tests.support.service import service_settings

pytestmark = pytest.mark.slow

# boundary -> (KillAt spec or None, payload extra, executions of steps 1..5)
# Publishes counted by the server: #1 is the trigger, #k+1 the continuation after step k.
BOUNDARIES = {
    "before-attempt": ("arrival:3", {}, [1, 1, 1, 1, 1]),
    "inside-body": (None, {"kill_in": "step-3"}, [1, 1, 2, 1, 1]),
    "after-commit-before-publish": ("publish:4", {}, [1, 1, 1, 1, 1]),
    # once step 3's continuation is published, step 4 may already run in a parallel delivery when
    # the process dies: steps 1-3 committed and must never run again; step 4 or 5 may be cut short
    "after-publish-before-2xx": ("response:3", {}, [1, 1, 1, None, None]),
}


@pytest.fixture(params=["sqlite", "postgres"])
async def databases(request, tmp_path, sqlite_templates) -> AsyncIterator[list[str]]:  # noqa: ANN001
    """One fresh, migrated database per boundary, all of one backend."""
    if request.param == "sqlite":
        yield [sqlite_templates.fresh(tmp_path) for _ in BOUNDARIES]
        return
    templates = request.getfixturevalue("postgres_templates")
    if templates is None:
        pytest.skip("no Postgres available (set TEST_DATABASE_URL)")
    urls = [await templates.fresh() for _ in BOUNDARIES]
    yield urls
    for url in urls:
        await templates.drop(url)


@dataclass
class Case:
    boundary: str
    database_url: str
    directory: Path

    def __post_init__(self) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.server_log = self.directory / "server.log"
        self.steps_log = self.directory / "steps.log"
        self.services = build_services(service_settings(self.database_url, self.base_url), WORKFLOWS)

    async def run_status(self, run_id: str) -> WorkflowRun:
        async with self.services.sessions() as session:
            run = await session.get(WorkflowRun, run_id)
            assert run is not None
            return run

    async def stuck_alerts(self, run_id: str) -> tuple[list[str], list[str]]:
        """The run's own `workflow.stuck` events, and the alerts written from them."""
        async with self.services.sessions() as session:
            stuck = await session.scalars(select(Event.type).where(Event.workflow_id == run_id))
            alerts = await session.scalars(select(Event.payload).where(Event.type == "alert.stuck_run"))
            return [t for t in stuck if t == "workflow.stuck"], [
                a["workflow_id"] for a in alerts if a.get("workflow_id") == run_id
            ]


async def _kill_and_recover(case: Case) -> tuple[str, WorkflowRun]:
    kill_at, extra, _ = BOUNDARIES[case.boundary]
    env = {"CURAWAY_TEST_KILL_AT": kill_at} if kill_at else {}
    process = start_server(case.port, case.database_url, case.server_log, env=env)
    try:
        await wait_healthy(case.base_url, process, case.server_log)
        run_id = await case.services.runtime.trigger("five-steps", {"log": str(case.steps_log), **extra})
        for _ in range(600):  # the process kills itself at the boundary
            if process.poll() is not None:
                break
            await asyncio.sleep(0.1)
        assert process.poll() is not None, f"{case.boundary}: never reached\n{case.server_log.read_text()[-2000:]}"
        if case.boundary != "after-publish-before-2xx":  # there steps 4 and 5 may have run in
            # deliveries of their own between the third delivery's release of the lease and its 2xx
            assert (await case.run_status(run_id)).status != "completed"
        done = case.steps_log.read_text().splitlines() if case.steps_log.exists() else []
        # killed on the third step: before it ran (two lines), once it had run (three), or later
        if case.boundary == "after-publish-before-2xx":
            # the third delivery may be one that found the lease still held by the second (it
            # rang the doorbell and answers 2xx): then the process dies after two steps
            assert len(done) >= 2, (case.boundary, done)
        else:
            assert len(done) == (2 if case.boundary == "before-attempt" else 3), (case.boundary, done)

        process = start_server(case.port, case.database_url, case.server_log)  # no fault this time
        await wait_healthy(case.base_url, process, case.server_log)
        for _ in range(900):
            run = await case.run_status(run_id)
            if run.status in ("completed", "failed"):
                break
            await asyncio.sleep(0.1)
        if case.boundary == "inside-body":  # the restarted process's watchdog and alert watcher
            for _ in range(300):
                stuck, alerts = await case.stuck_alerts(run_id)
                if alerts:
                    break
                await asyncio.sleep(0.1)
            assert stuck and alerts == [run_id], (stuck, alerts, case.server_log.read_text()[-2000:])
        return run_id, run
    finally:
        stop(process)


async def test_sigkill_at_every_step_boundary_loses_nothing_and_repeats_no_committed_step(databases, tmp_path):
    cases = []
    for boundary, url in zip(BOUNDARIES, databases, strict=True):
        (tmp_path / boundary).mkdir()
        cases.append(Case(boundary, url, tmp_path / boundary))
    try:
        outcomes = await asyncio.gather(*(_kill_and_recover(case) for case in cases))
        for case, (run_id, run) in zip(cases, outcomes, strict=True):
            logs = f"{case.boundary}:\n{case.server_log.read_text()[-3000:]}"
            assert run.status == "completed", (run.status, run.error, logs)
            executions = case.steps_log.read_text().splitlines()
            counts = [executions.count(f"{run_id} step-{i}") for i in range(1, 6)]
            expected = BOUNDARIES[case.boundary][2]
            assert all(n == e if e is not None else n in (1, 2) for n, e in zip(counts, expected, strict=True)), (
                case.boundary,
                counts,
                logs,
            )
    finally:
        for case in cases:
            await case.services.http.aclose()
            await case.services.engine.dispose()
