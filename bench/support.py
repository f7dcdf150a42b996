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
