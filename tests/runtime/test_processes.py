"""Several service processes on one Postgres database, deliveries landing on either at random."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from sqlalchemy import func, select

from app.main import build_services
from app.runtime.models import RunStatus, WorkflowRun
from app.serving import serve_in_loop
from tests.support.process_server import WORKFLOWS
from tests.support.processes import free_port, start_server, stop, wait_healthy
from tests.support.proxy import random_proxy
from tests.support.service import service_settings

pytestmark = pytest.mark.slow

RUNS, STEPS = 200, 5


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_two_processes_run_200_workflows_each_step_exactly_once(database_url, tmp_path):
    ports = [free_port(), free_port()]
    backends = [f"http://127.0.0.1:{p}" for p in ports]
    hits: Counter[str] = Counter()
    steps_log = tmp_path / "steps.log"
    async with serve_in_loop(lambda _: random_proxy(backends, hits)) as (proxy_url, _):
        logs = [tmp_path / f"server-{i}.log" for i in range(2)]
        processes = [start_server(p, database_url, log, proxy_url) for p, log in zip(ports, logs, strict=True)]
        services = build_services(service_settings(database_url, proxy_url), WORKFLOWS)
        try:
            for backend, process, log in zip(backends, processes, logs, strict=True):
                await wait_healthy(backend, process, log)
            run_ids = [await services.runtime.trigger("five-steps", {"log": str(steps_log)}) for _ in range(RUNS)]
            for _ in range(1800):
                async with services.sessions() as session:
                    done = await session.scalar(
                        select(func.count()).select_from(WorkflowRun).where(WorkflowRun.status == RunStatus.COMPLETED)
                    )
                if done == RUNS:
                    break
                await asyncio.sleep(0.1)
            assert done == RUNS, [log.read_text()[-2000:] for log in logs]
        finally:
            for process in processes:
                stop(process)
            await services.http.aclose()
            await services.engine.dispose()
    executions = Counter(steps_log.read_text().splitlines())
    expected = {f"{run_id} step-{i}" for run_id in run_ids for i in range(1, STEPS + 1)}
    assert set(executions) == expected
    assert max(executions.values()) == 1
    workflow_hits = {b: n for b, n in hits.items()}
    assert all(workflow_hits.get(b, 0) > 100 for b in backends), workflow_hits  # both processes served deliveries
