"""A stale attempt can never record its result (issue: runtime under faults, isolation).

Two service processes share one Postgres database behind a load balancer. The process running
step 3 is frozen (SIGSTOP) in the middle of the step and taken out of the balancer; with the
shipped lease, its lease lapses, the watchdog of the other process hands the run on, and the
other process runs step 3 again and finishes the run. Then the frozen process is thawed: its
attempt completes, and its result is refused, so the run keeps the second attempt's result.
(SQLite is the single-process development database, so this needs two processes on Postgres.)
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from app.main import build_services
from app.runtime.models import WorkflowRun, WorkflowStep
from app.serving import serve_in_loop
from tests.support.process_server import WORKFLOWS
from tests.support.processes import free_port, start_server, stop, wait_healthy
from tests.support.proxy import random_proxy
from tests.support.service import service_settings

pytestmark = pytest.mark.slow


async def _until(predicate, what: str, timeout: float = 120) -> None:  # noqa: ANN001
    for _ in range(int(timeout / 0.05)):
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_frozen_attempt_that_wakes_after_the_run_moved_on_records_nothing(database_url, tmp_path):
    ports = [free_port(), free_port()]
    backends = [f"http://127.0.0.1:{p}" for p in ports]
    steps_log = tmp_path / "steps.log"
    marker = Path(str(steps_log) + ".stalling")
    async with serve_in_loop(lambda _: random_proxy(backends, Counter())) as (proxy_url, _):
        logs = [tmp_path / f"server-{i}.log" for i in range(2)]
        processes = [start_server(p, database_url, log, proxy_url) for p, log in zip(ports, logs, strict=True)]
        services = build_services(service_settings(database_url, proxy_url), WORKFLOWS)
        frozen = None
        try:
            for backend, process, log in zip(backends, processes, logs, strict=True):
                await wait_healthy(backend, process, log)
            run_id = await services.runtime.trigger("stall-three", {"log": str(steps_log)})

            async def stalling() -> bool:
                return marker.exists() and marker.read_text() != ""

            await _until(stalling, "step 3's first attempt")
            frozen = next(p for p in processes if str(p.pid) == marker.read_text())
            frozen.send_signal(signal.SIGSTOP)
            backends.remove(backends[processes.index(frozen)])  # the balancer sees it as down
            survivor = next(p for p in processes if p is not frozen)

            async def run_row() -> WorkflowRun:
                async with services.sessions() as session:
                    run = await session.get(WorkflowRun, run_id)
                    assert run is not None
                    return run

            async def finished() -> bool:
                return (await run_row()).status in ("completed", "failed")

            await _until(finished, "the other process to finish the run")
            run = await run_row()
            assert run.status == "completed", (run.status, run.error, [log.read_text()[-2000:] for log in logs])
            assert run.result[2] == f"step-3 by {survivor.pid}"

            frozen.send_signal(signal.SIGCONT)
            frozen_log = logs[processes.index(frozen)]

            async def refused() -> bool:
                return "lost the lease" in frozen_log.read_text()

            await _until(refused, "the thawed attempt to be refused")
            async with services.sessions() as session:
                step = await session.scalar(
                    select(WorkflowStep).where(WorkflowStep.run_id == run_id, WorkflowStep.name == "step-3")
                )
                assert step is not None
                assert (step.status, step.attempts, step.result) == ("completed", 2, f"step-3 by {survivor.pid}")
            assert (await run_row()).result == run.result
            executions = Counter(steps_log.read_text().splitlines())
            assert [executions[f"{run_id} step-{i}"] for i in range(1, 6)] == [1, 1, 2, 1, 1]
        finally:
            if frozen is not None and frozen.poll() is None:
                frozen.send_signal(signal.SIGCONT)
            for process in processes:
                stop(process)
            await services.http.aclose()
            await services.engine.dispose()
