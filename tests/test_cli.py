"""The `curaway` command, run as a real subprocess against real databases."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from app.config import PROJECT_ROOT
from tests.runtime.coordination_workflows import COORDINATION
from tests.runtime.workflows import Recorder
from tests.support.service import live_service


async def _curaway(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app.cli", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_help_lists_every_command():
    result = await _curaway("--help", env={})
    assert result.returncode == 0
    for command in ("serve", "migrate", "runs", "schedules", "jobs"):
        assert command in result.stdout
    runs = await _curaway("runs", "--help", env={})
    for command in ("list", "show", "retry", "cancel"):
        assert command in runs.stdout


async def test_migrate_creates_the_schema_of_a_new_sqlite_database(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'new.db'}"
    result = await _curaway("migrate", env={"DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    listing = await _curaway("runs", "list", env={"DATABASE_URL": url})
    assert listing.returncode == 0 and "no runs" in listing.stdout


async def test_runs_list_show_cancel_and_retry_against_a_live_service(database_url):
    recorder = Recorder()
    async with live_service(database_url, COORDINATION, deps=recorder) as svc:
        env = {"DATABASE_URL": database_url, "PUBLIC_BASE_URL": svc.base_url, "ENV": "development"}
        waiting = await svc.runtime.trigger("waiter", {"event": "cli", "timeout": 600})
        await svc.wait(waiting, statuses={"waiting"})
        listing = await _curaway("runs", "list", "--workflow", "waiter", env=env)
        assert waiting in listing.stdout and "waiting" in listing.stdout
        shown = await _curaway("runs", "show", waiting, env=env)
        assert "approval" in shown.stdout and "workflow.waiting" in shown.stdout
        missing = await _curaway("runs", "show", "wfr_nope", env=env)
        assert missing.returncode == 1 and "no run wfr_nope" in missing.stderr

        cancelled = await _curaway("runs", "cancel", waiting, env=env)
        assert cancelled.returncode == 0 and f"cancelled {waiting}" in cancelled.stdout
        assert (await svc.run(waiting)).status == "cancelled"

        failed = await svc.runtime.trigger("fails-at-five", {})
        assert (await svc.wait(failed)).status == "failed"
        recorder.version = 2
        retried = await _curaway("runs", "retry", failed, env=env)
        assert retried.returncode == 0, retried.stderr
        assert (await svc.wait(failed)).status == "completed"
        refused = await _curaway("runs", "retry", failed, env=env)
        assert refused.returncode == 1 and "only failed runs" in refused.stderr
