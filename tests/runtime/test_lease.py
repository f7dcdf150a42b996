"""Taking a run's lease (`RunStore.acquire_or_ring`): the run and its steps, or the holder rung.

On SQLite the usual case (the lease is free) is one transaction of plain statements
(`store._take_lease`), its rows read as SQLAlchemy would read them; on Postgres two
autocommitted statements. Both are checked here: what a delivery gets with the lease, that a
live lease is never taken from its holder (it is rung), that a lapsed one is taken over, and
that a finished or unknown run gives nothing to drive; and, on Postgres, where the lease is
committed before the steps are read, that a delivery stopped between the two gives it back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, timedelta

import asyncpg
import pytest
from sqlalchemy import select, update

from app.db import utcnow
from app.runtime.coordination import Lease, Ring
from app.runtime.records import RUNS, Completed
from app.runtime.store import RunStore
from tests.support.databases import plain_pg_url
from tests.support.stores import SHIPPED_LEASE_TTL_S, run_store, wait_for_a_lock_wait

HOLDER, OTHER = "delivery-1", "delivery-2"


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[RunStore]:
    async with run_store(database_url) as store:
        yield store


async def held_run(store: RunStore, run_id: str) -> Lease:
    """A run HOLDER leases, whose step `first` completed (with a result) and `second` runs."""
    await store.create_run(run_id, "wf", {"n": 1}, labels={"case_id": "case-3"})
    lease = await store.acquire_or_ring(run_id, HOLDER, SHIPPED_LEASE_TTL_S)
    assert isinstance(lease, Lease)
    await store.start_attempt(run_id, HOLDER, position=0, name="first", kind="run", attempt=1)
    done = Completed(0, {"ok": [1, 2]}, {"attempt": 1}, 1)
    await store.start_attempt(run_id, HOLDER, position=1, name="second", kind="run", attempt=1, completed=[done])
    return lease


async def run_row(store: RunStore, run_id: str) -> tuple[str | None, bool]:
    async with store.sessions() as session:
        row = (await session.execute(select(RUNS.c.lease_owner, RUNS.c.wake_pending).where(RUNS.c.id == run_id))).one()
    return row.lease_owner, row.wake_pending


async def test_a_free_lease_comes_with_the_run_and_its_steps_as_recorded(store):
    first = await held_run(store, "wfr_l1")
    assert (first.run.status, first.run.payload, first.run.labels, first.steps) == (
        "pending",
        {"n": 1},
        {"case_id": "case-3"},
        {},
    )
    await store.release_lease("wfr_l1", HOLDER)
    async with store.sessions() as session, session.begin():  # something rang while the run was idle
        await session.execute(update(RUNS).where(RUNS.c.id == "wfr_l1").values(wake_pending=True))

    lease = await store.acquire_or_ring("wfr_l1", OTHER, SHIPPED_LEASE_TTL_S)
    assert isinstance(lease, Lease)
    run = lease.run
    assert (run.status, run.payload, run.labels, run.lease_owner) == ("running", {"n": 1}, {"case_id": "case-3"}, OTHER)
    assert run.lease_expires_at.tzinfo == UTC and run.created_at.tzinfo == UTC
    assert run.lease_expires_at > utcnow() + timedelta(seconds=SHIPPED_LEASE_TTL_S - 60)
    assert sorted(lease.steps) == [0, 1]
    first_step, second_step = lease.steps[0], lease.steps[1]
    assert (first_step.name, first_step.status, first_step.result, first_step.attempts) == (
        "first",
        "completed",
        {"ok": [1, 2]},
        1,
    )
    assert (second_step.name, second_step.status, second_step.result) == ("second", "running", None)
    assert first_step.finished_at.tzinfo == UTC and second_step.finished_at is None
    assert await run_row(store, "wfr_l1") == (OTHER, False)  # the doorbell is cleared by whoever takes the lease


async def test_a_live_lease_is_not_taken_its_holder_is_rung(store):
    await held_run(store, "wfr_l2")
    assert await store.acquire_or_ring("wfr_l2", OTHER, SHIPPED_LEASE_TTL_S) is Ring.RANG
    assert await run_row(store, "wfr_l2") == (HOLDER, True)


async def test_a_lapsed_lease_is_taken_over(store):
    await held_run(store, "wfr_l3")
    async with store.sessions() as session, session.begin():  # its holder died a lease ago
        lapsed = utcnow() - timedelta(seconds=1)
        await session.execute(update(RUNS).where(RUNS.c.id == "wfr_l3").values(lease_expires_at=lapsed))
    lease = await store.acquire_or_ring("wfr_l3", OTHER, SHIPPED_LEASE_TTL_S)
    assert isinstance(lease, Lease) and lease.run.lease_owner == OTHER
    assert sorted(lease.steps) == [0, 1]
    assert await run_row(store, "wfr_l3") == (OTHER, False)


async def test_a_finished_or_unknown_run_has_nothing_to_drive(store):
    await held_run(store, "wfr_l4")
    await store.complete_run("wfr_l4", HOLDER, 42)
    assert await store.acquire_or_ring("wfr_l4", OTHER, SHIPPED_LEASE_TTL_S) is Ring.FINISHED
    assert await store.acquire_or_ring("wfr_missing", OTHER, SHIPPED_LEASE_TTL_S) is Ring.FINISHED


async def test_a_delivery_stopped_while_reading_the_steps_gives_the_lease_back(store, database_url):
    """Postgres commits the lease before the steps are read. Here another session's lock holds the
    steps' read, and the delivery is cancelled there (its request dropped): the lease goes back at
    once instead of keeping the run from every other delivery for WORKFLOW_LEASE_TTL_S."""
    if not database_url.startswith("postgresql"):
        pytest.skip("on SQLite the lease and the steps' read are one transaction")
    await held_run(store, "wfr_l5")
    await store.release_lease("wfr_l5", HOLDER)
    locker = await asyncpg.connect(plain_pg_url(database_url))
    try:
        locking = locker.transaction()
        await locking.start()
        await locker.execute("LOCK TABLE workflow_steps IN ACCESS EXCLUSIVE MODE")
        acquire = asyncio.create_task(store.acquire_or_ring("wfr_l5", OTHER, SHIPPED_LEASE_TTL_S))
        await wait_for_a_lock_wait(locker)
        assert (await run_row(store, "wfr_l5"))[0] == OTHER  # the lease is committed; the steps' read waits
        acquire.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(acquire, 30)
        assert await run_row(store, "wfr_l5") == (None, False)  # given back while the lock is still held
        await locking.rollback()
    finally:
        await locker.close()
    lease = await store.acquire_or_ring("wfr_l5", OTHER, SHIPPED_LEASE_TTL_S)
    assert isinstance(lease, Lease) and sorted(lease.steps) == [0, 1]
