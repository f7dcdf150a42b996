"""A `RunStore` on a test's own database, with the lease as shipped (store-level runtime tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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
