"""Resolving a waiting step (`notify`, a child's end): the step, its event and the run's wake-up.

On Postgres each resolution is one call of a function of migration 0012
(`sql.SETTLE_AND_WAKE_PG`, `sql.NOTIFY_PG`); on SQLite the same writes run one statement at a
time. Each case of the doorbell (docs/runtime.md) is checked on both: a live lease is rung, an idle run gets the doorbell and one outbox row, a run
whose wake-up is on its way or which has finished gets none, and a step something else settled
first is written nothing at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import delete, func, select, text, update

from app.db import utcnow
from app.runtime.coordination import ChildStart
from app.runtime.models import EVENT_LABELS, Event, WorkflowOutbox, WorkflowStep, WorkflowWaiter
from app.runtime.records import RUNS, STEPS
from app.runtime.store import RunStore
from tests.support.databases import plain_pg_url
from tests.support.stores import SHIPPED_LEASE_TTL_S, run_store, wait_for_a_lock_wait

OWNER = "delivery-1"
KEEP = timedelta(hours=1)
LABELS = {label: f"{label}-9" for label in EVENT_LABELS}  # every label copied onto events (DESIGN 3.3)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[RunStore]:
    async with run_store(database_url) as store:
        yield store


async def waiting_run(
    store: RunStore, run_id: str, *, release: bool = True, event: str | None = None, **run: Any
) -> None:
    """A run whose step 0 waits for `event` (`ev-<run_id>`); idle unless `release` is False; `run` sets its columns."""
    await store.create_run(run_id, "wf", {}, labels=LABELS)
    assert await store.acquire_or_ring(run_id, OWNER, SHIPPED_LEASE_TTL_S) is not None
    deadline = utcnow() + timedelta(hours=1)
    await store.start_wait_for_event(
        run_id, OWNER, position=0, name="wait", event_id=event or f"ev-{run_id}", deadline=deadline
    )
    if release:
        await store.release_lease(run_id, OWNER)
    async with store.sessions() as session, session.begin():
        await session.execute(update(RUNS).where(RUNS.c.id == run_id).values(**{"wake_pending": False, **run}))
        await session.execute(delete(WorkflowOutbox).where(WorkflowOutbox.run_id == run_id))  # its start, sent


async def state(store: RunStore, run_id: str) -> dict[str, Any]:
    async with store.sessions() as session:
        step = await session.scalar(select(WorkflowStep).where(WorkflowStep.run_id == run_id))
        events = list(
            await session.scalars(select(Event).where(Event.workflow_id == run_id, Event.type == "step.completed"))
        )
        outbox = list(await session.scalars(select(WorkflowOutbox.key).where(WorkflowOutbox.run_id == run_id)))
        rung = await session.scalar(select(RUNS.c.wake_pending).where(RUNS.c.id == run_id))
    return {"step": (step.status, step.result), "events": events, "outbox": outbox, "rung": rung}


async def test_an_idle_run_gets_its_step_its_event_the_doorbell_and_one_wake_up(store):
    await waiting_run(store, "wfr_k1")
    wakes, woken = await store.notify("ev-wfr_k1", {"x": 1}, keep_for=KEEP)
    assert woken == ["wfr_k1"]
    [wake] = wakes
    assert (wake.ref.run_id, wake.ref.workflow, wake.ref.position, wake.key) == ("wfr_k1", "wf", 0, "notify-0.r0")
    now = await state(store, "wfr_k1")
    assert now["step"] == ("completed", {"data": {"x": 1}, "timed_out": False})
    [event] = now["events"]
    assert event.payload == {"step": "wait", "position": 0, "event_id": "ev-wfr_k1", "timed_out": False}
    assert {label: getattr(event, label) for label in EVENT_LABELS} == LABELS
    assert (now["outbox"], now["rung"]) == (["notify-0.r0"], True)


async def test_a_run_whose_wake_up_is_on_its_way_gets_no_second_one(store):
    await waiting_run(store, "wfr_k2", wake_pending=True)
    wakes, woken = await store.notify("ev-wfr_k2", None, keep_for=KEEP)
    assert (wakes, woken) == ([], ["wfr_k2"])
    now = await state(store, "wfr_k2")
    assert (now["step"][0], len(now["events"]), now["outbox"], now["rung"]) == ("completed", 1, [], True)


async def test_a_live_lease_is_rung_and_sent_nothing(store):
    await waiting_run(store, "wfr_k3", release=False)
    wakes, woken = await store.notify("ev-wfr_k3", None, keep_for=KEEP)
    assert (wakes, woken) == ([], ["wfr_k3"])
    now = await state(store, "wfr_k3")
    assert (now["step"][0], len(now["events"]), now["outbox"], now["rung"]) == ("completed", 1, [], True)


async def test_a_lapsed_lease_gets_the_doorbell_and_a_wake_up(store):
    await waiting_run(store, "wfr_k4", release=False, lease_expires_at=utcnow() - timedelta(seconds=1))
    wakes, _ = await store.notify("ev-wfr_k4", None, keep_for=KEEP)
    assert [wake.key for wake in wakes] == ["notify-0.r0"]
    now = await state(store, "wfr_k4")
    assert (now["outbox"], now["rung"]) == (["notify-0.r0"], True)


async def test_a_finished_run_gets_its_step_settled_and_no_wake_up(store):
    await waiting_run(store, "wfr_k5", status="completed")
    wakes, woken = await store.notify("ev-wfr_k5", None, keep_for=KEEP)
    assert (wakes, woken) == ([], ["wfr_k5"])
    now = await state(store, "wfr_k5")
    assert (now["step"][0], len(now["events"]), now["outbox"], now["rung"]) == ("completed", 1, [], False)


async def test_a_step_settled_by_something_else_first_is_written_nothing(store):
    await waiting_run(store, "wfr_k6")
    async with store.sessions() as session, session.begin():  # a timeout won the race
        await session.execute(
            update(STEPS).where(STEPS.c.run_id == "wfr_k6").values(status="completed", result={"timed_out": True})
        )
    wakes, woken = await store.notify("ev-wfr_k6", None, keep_for=KEEP)
    assert (wakes, woken) == ([], [])
    now = await state(store, "wfr_k6")
    assert now == {"step": ("completed", {"timed_out": True}), "events": [], "outbox": [], "rung": False}


async def test_a_run_row_held_by_another_transaction_is_not_waited_for_and_still_woken(store):
    if store.sessions.kw["bind"].dialect.name != "postgresql":
        pytest.skip("SQLite's BEGIN IMMEDIATE lets no two writers hold rows at once")
    await waiting_run(store, "wfr_k7")
    async with store.sessions() as holder, holder.begin():  # as an UPDATE of the run row does
        await holder.execute(text("SELECT 1 FROM workflow_runs WHERE id = 'wfr_k7' FOR NO KEY UPDATE"))
        wakes, woken = await store.notify("ev-wfr_k7", None, keep_for=KEEP)
    assert ([wake.key for wake in wakes], woken) == (["notify-0.r0"], ["wfr_k7"])
    now = await state(store, "wfr_k7")
    assert (now["outbox"], now["rung"]) == (["notify-0.r0"], False)  # the doorbell is the holder's to see


async def test_every_waiter_of_an_event_is_woken_in_the_order_it_began_waiting(store):
    for run_id in ("wfr_m1", "wfr_m2", "wfr_m3"):
        await waiting_run(store, run_id, event="ev-many")
    async with store.sessions() as session, session.begin():  # wfr_m2's wait timed out, its waiter not yet gone
        await session.execute(update(STEPS).where(STEPS.c.run_id == "wfr_m2").values(status="completed"))
    wakes, woken = await store.notify("ev-many", {"n": 3}, keep_for=KEEP)
    assert woken == ["wfr_m1", "wfr_m3"]
    assert [(wake.ref.run_id, wake.key) for wake in wakes] == [("wfr_m1", "notify-0.r0"), ("wfr_m3", "notify-0.r0")]
    async with store.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(WorkflowWaiter)) == 0
    assert (await state(store, "wfr_m2"))["events"] == []
    assert await store.notify("ev-many", None, keep_for=KEEP) == ([], [])  # nothing left: kept for a next waiter


async def test_a_waiter_removed_while_the_notify_waits_for_it_does_not_stop_the_others(store, database_url):
    """A wait's timeout deletes its waiter row without the event's lock; a notify that meets that
    row locked waits for it, and once it is gone takes the other waiters."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite's BEGIN IMMEDIATE lets no two writers hold rows at once")
    await waiting_run(store, "wfr_n1", event="ev-two")
    await waiting_run(store, "wfr_n2", event="ev-two")
    timeout = await asyncpg.connect(plain_pg_url(database_url))
    try:
        deleting = timeout.transaction()
        await deleting.start()
        await timeout.execute("DELETE FROM workflow_waiters WHERE run_id = 'wfr_n1'")
        notify = asyncio.create_task(store.notify("ev-two", "go", keep_for=KEEP))
        await wait_for_a_lock_wait(timeout)  # the notify's DELETE waits for that row
        await deleting.commit()
        wakes, woken = await asyncio.wait_for(notify, 30)
    finally:
        await timeout.close()
    assert (woken, [wake.ref.run_id for wake in wakes]) == (["wfr_n2"], ["wfr_n2"])
    assert (await state(store, "wfr_n1"))["step"] == ("waiting", None)  # its timeout settles it


async def test_a_notify_waits_for_a_wait_of_its_event_being_registered(store, database_url):
    """One advisory lock per event ID, taken by a wait's transaction (`_lock_event`) and by
    `workflow_notify` alike, so a notify never slips between a wait's look for a kept notification
    and its waiter's insert."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite's BEGIN IMMEDIATE serialises every writer")
    watcher = await asyncpg.connect(plain_pg_url(database_url))
    try:
        async with store.sessions() as waiting, waiting.begin():
            await store._lock_event(waiting, "ev-locked")  # as start_wait_for_event does first
            notify = asyncio.create_task(store.notify("ev-locked", 5, keep_for=KEEP))
            await wait_for_a_lock_wait(watcher)
            assert not notify.done()
        assert await asyncio.wait_for(notify, 30) == ([], [])  # then it ran: nobody waited, kept
    finally:
        await watcher.close()


async def test_a_notify_sent_again_by_its_step_writes_nothing_twice(store):
    """`source` is the `ctx.notify` step sending it: its retry gets the runs the first attempt woke."""
    await waiting_run(store, "wfr_s1", event="ev-src")
    first = await store.notify("ev-src", 1, keep_for=KEEP, source="wfr_x:2")
    again = await store.notify("ev-src", 1, keep_for=KEEP, source="wfr_x:2")
    assert ([wake.ref.run_id for wake in first[0]], first[1]) == (["wfr_s1"], ["wfr_s1"])
    assert again == ([], ["wfr_s1"])
    assert len((await state(store, "wfr_s1"))["events"]) == 1
    await waiting_run(store, "wfr_s2", event="ev-src")  # nothing was kept for a later waiter
    assert (await state(store, "wfr_s2"))["step"] == ("waiting", None)
    assert await store.notify("ev-early", 7, keep_for=KEEP, source="wfr_x:3") == ([], [])  # nobody waits: kept
    assert await store.notify("ev-early", 7, keep_for=KEEP, source="wfr_x:3") == ([], [])
    await waiting_run(store, "wfr_s3", event="ev-early")
    await waiting_run(store, "wfr_s4", event="ev-early")
    assert (await state(store, "wfr_s3"))["step"] == ("completed", {"data": 7, "timed_out": False})
    assert (await state(store, "wfr_s4"))["step"] == ("waiting", None)  # kept once


async def test_a_childs_end_wakes_its_idle_parent_once(store):
    await store.create_run("wfr_p1", "wf", {}, labels=LABELS)
    assert await store.acquire_or_ring("wfr_p1", OWNER, SHIPPED_LEASE_TTL_S) is not None
    [start] = await store.start_children("wfr_p1", OWNER, [ChildStart(0, "kid", "wfr_c1", "wf", {}, True)])
    await store.release_lease("wfr_p1", OWNER)
    async with store.sessions() as session, session.begin():
        await session.execute(delete(WorkflowOutbox))  # the starts, sent
    assert await store.acquire_or_ring("wfr_c1", "child-owner", SHIPPED_LEASE_TTL_S) is not None
    wake = await store.complete_run("wfr_c1", "child-owner", 42)
    assert wake is not None and (wake.ref.run_id, wake.key) == ("wfr_p1", "child-wfr_c1.r0")
    now = await state(store, "wfr_p1")
    assert now["step"] == ("completed", {"run_id": "wfr_c1", "status": "completed", "result": 42, "error": None})
    assert [event.payload for event in now["events"]] == [{"step": "kid", "position": 0, "child_run_id": "wfr_c1"}]
    assert (now["outbox"], now["rung"], start.key) == (["child-wfr_c1.r0"], True, "start")
