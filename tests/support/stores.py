"""A `RunStore` on a test's own database, with the lease as shipped (store-level runtime tests)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from app.config import Settings
from app.db import create_engine, session_factory
from app.runtime.store import RunStore

SHIPPED_LEASE_TTL_S = Settings.model_fields["workflow_lease_ttl_s"].default  # WORKFLOW_LEASE_TTL_S as shipped


@asynccontextmanager
async def run_store(database_url: str) -> AsyncIterator[RunStore]:
    """A `RunStore` whose fenced writes extend the lease by `SHIPPED_LEASE_TTL_S`; its engine disposed after."""
    engine = create_engine(database_url)
    try:
        yield RunStore(session_factory(engine), lease_ttl_s=SHIPPED_LEASE_TTL_S)
    finally:
        await engine.dispose()


async def wait_for_a_lock_wait(watcher: asyncpg.Connection, timeout: float = 30) -> None:
    """Until another session of this test's own database waits for a lock (the one `watcher` holds)."""
    deadline = time.monotonic() + timeout
    query = """SELECT count(*) FROM pg_stat_activity
               WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"""
    while not await watcher.fetchval(query):
        assert time.monotonic() < deadline, "nothing waited for the lock"
        await asyncio.sleep(0.01)
