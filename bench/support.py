"""Shared plumbing for the benchmarks: a scratch database and an in-process server."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg

from app.config import Settings
from app.migrate import upgrade
from app.runtime.models import RunStatus


def bench_settings(database_url: str, base_url: str, **overrides: Any) -> Settings:
    """Development settings for a benchmark's in-process service (quiet logs, fast polling)."""
    values: dict[str, Any] = {
        "env": "development",
        "database_url": database_url,
        "public_base_url": base_url,
        "log_level": "WARNING",
        "devqstash_poll_interval_s": 0.05,
        "rate_limits": "",  # one client uploads hundreds of documents: measure the pipeline, not the limiter
    }
    return Settings(_env_file=None, **{**values, **overrides})  # type: ignore[call-arg]


@asynccontextmanager
async def fresh_database(db: str, dsn: str) -> AsyncIterator[str]:
    """A new, migrated database: a temporary SQLite file, or a scratch database on `dsn`."""
    if db == "sqlite":
        with tempfile.TemporaryDirectory(prefix="curaway-bench-") as directory:
            url = f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}"
            await asyncio.to_thread(upgrade, url)
            yield url
        return
    name = f"curaway_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = dsn.rsplit("/", 1)[0] + f"/{name}"
        await asyncio.to_thread(upgrade, url)
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


class FinishedRuns:
    """The runtime's hooks, plus a record of runs as they finish (`run_finished`): no database polling.

    Install with `runtime.hooks = FinishedRuns(runtime.hooks)`; the app's own observer keeps
    getting every call.
    """

    def __init__(self, hooks: Any) -> None:
        self.hooks = hooks
        self.completed = self.failed = 0
        self.statuses: dict[str, str] = {}
        self.changed = asyncio.Event()  # set at every finish; clear it before reading the counts

    def __getattr__(self, name: str) -> Any:
        return getattr(self.hooks, name)

    def run_finished(self, run_id: str, workflow: str, status: str) -> None:
        self.hooks.run_finished(run_id, workflow, status)
        self.statuses[run_id] = status
        if status == RunStatus.COMPLETED:
            self.completed += 1
        else:
            self.failed += 1
        self.changed.set()

    async def wait(self, run_id: str, timeout: float = 600) -> str:
        """The status `run_id` finished with, once it has."""
        async with asyncio.timeout(timeout):
            while run_id not in self.statuses:
                self.changed.clear()
                if run_id not in self.statuses:
                    await self.changed.wait()
        return self.statuses[run_id]
