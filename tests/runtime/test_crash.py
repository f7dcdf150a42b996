"""Kill -9 the service in the middle of a step; the run resumes at that step after a restart."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from app.main import build_services
from app.runtime.models import WorkflowRun
from tests.support.process_server import WORKFLOWS
from tests.support.processes import free_port, start_server, stop, wait_healthy
from tests.support.service import service_settings

pytestmark = pytest.mark.slow


async def test_sigkill_during_step_4_resumes_there_after_restart(database_url, tmp_path):
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    steps_log, server_log = tmp_path / "steps.log", tmp_path / "server.log"
    process = start_server(port, database_url, server_log)
    services = build_services(service_settings(database_url, base_url), WORKFLOWS)  # the test's own handle
    try:
        await wait_healthy(base_url, process, server_log)
        run_id = await services.runtime.trigger("crash-seven", {"log": str(steps_log)})
        marker = Path(str(steps_log) + ".hanging")
        for _ in range(300):
            if marker.exists():
                break
            await asyncio.sleep(0.05)
        assert marker.exists(), server_log.read_text()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

        process = start_server(port, database_url, server_log)
        await wait_healthy(base_url, process, server_log)
        for _ in range(600):
            async with services.sessions() as session:
                run = await session.get(WorkflowRun, run_id)
            if run.status in ("completed", "failed"):
                break
            await asyncio.sleep(0.1)
        assert run.status == "completed", (run.status, run.error, server_log.read_text()[-3000:])
        executions = steps_log.read_text().splitlines()
        assert [executions.count(f"{run_id} step-{i}") for i in range(1, 8)] == [1, 1, 1, 2, 1, 1, 1]
    finally:
        stop(process)
        await services.http.aclose()
        await services.engine.dispose()
