"""Kill -9 the service in the middle of a step; the run resumes at that step after a restart."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from app.config import PROJECT_ROOT
from app.main import build_services
from app.runtime.models import WorkflowRun
from tests.support.crash_server import crash_seven
from tests.support.live import bind_socket
from tests.support.service import service_settings

pytestmark = pytest.mark.slow


def _start(port: int, database_url: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.crash_server", str(port), database_url],
        cwd=PROJECT_ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def _wait_healthy(base_url: str, process: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            assert process.poll() is None, "service process exited"
            try:
                if (await client.get(f"{base_url}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("service did not become healthy")


async def test_sigkill_during_step_4_resumes_there_after_restart(database_url, tmp_path):
    sock = bind_socket()
    port = sock.getsockname()[1]
    sock.close()
    base_url = f"http://127.0.0.1:{port}"
    steps_log = tmp_path / "steps.log"
    server_log = tmp_path / "server.log"
    process = _start(port, database_url, server_log)
    # The test's own handle on the database and on the service's embedded QStash.
    services = build_services(service_settings(database_url, base_url), [crash_seven])
    try:
        await _wait_healthy(base_url, process)
        run_id = await services.runtime.trigger("crash-seven", {"log": str(steps_log)})
        marker = Path(str(steps_log) + ".hanging")
        for _ in range(300):
            if marker.exists():
                break
            await asyncio.sleep(0.05)
        assert marker.exists(), server_log.read_text()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

        process = _start(port, database_url, server_log)
        await _wait_healthy(base_url, process)
        for _ in range(600):
            async with services.sessions() as session:
                run = await session.get(WorkflowRun, run_id)
            if run.status in ("completed", "failed"):
                break
            await asyncio.sleep(0.1)
        assert run.status == "completed", (run.status, run.error, server_log.read_text()[-3000:])
        executions = steps_log.read_text().splitlines()
        assert [executions.count(f"step-{i}") for i in range(1, 8)] == [1, 1, 1, 2, 1, 1, 1]
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        await services.http.aclose()
        await services.engine.dispose()
