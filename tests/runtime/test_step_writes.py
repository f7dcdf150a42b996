"""A step's write (`RunStore.start_attempt`): all of it or, when refused, none of its parts.

On Postgres an inline step's write is one autocommitted statement (`sql.START_ATTEMPT_PG`);
on SQLite, and on Postgres with several earlier results, it is one transaction. Each refusal is
checked on both: the earlier result, its event and the next start are written together or not
at all, and the error says why.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, update

from app.runtime.errors import LeaseLostError, RunCancelledError
from app.runtime.models import Event, WorkflowStep
from app.runtime.records import RUNS, STEPS, Completed
from app.runtime.store import RunStore
from tests.support.stores import SHIPPED_LEASE_TTL_S, run_store

OWNER = "delivery-1"


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[RunStore]:
    async with run_store(database_url) as store:
        yield store


async def leased_run(store: RunStore, run_id: str) -> None:
    """A run driven by OWNER whose first step (`first`, attempt 1) is running."""
    await store.create_run(run_id, "wf", {}, labels={"case_id": "case-7"})
    assert await store.acquire_or_ring(run_id, OWNER, SHIPPED_LEASE_TTL_S) is not None
    await store.start_attempt(run_id, OWNER, position=0, name="first", kind="run", attempt=1)


def first_done(attempt: int | None = 1) -> Completed:
    return Completed(0, {"ok": True}, {"attempt": 1, "duration_ms": 1.5}, attempt)


async def state(store: RunStore, run_id: str) -> tuple[dict[str, tuple[str, int]], list[Event]]:
    async with store.sessions() as session:
        steps = await session.scalars(select(WorkflowStep).where(WorkflowStep.run_id == run_id))
        events = await session.scalars(select(Event).where(Event.workflow_id == run_id, Event.type == "step.completed"))
        return {step.name: (step.status, step.attempts) for step in steps}, list(events)


async def test_an_inline_step_write_records_the_result_its_event_and_the_next_start(store):
    await leased_run(store, "wfr_w1")
    await store.start_attempt(
        "wfr_w1", OWNER, position=1, name="second", kind="run", attempt=1, completed=[first_done()]
    )
    steps, events = await state(store, "wfr_w1")
    assert steps == {"first": ("completed", 1), "second": ("running", 1)}
    [event] = events
    assert (event.case_id, event.payload) == (
        "case-7",
        {"step": "first", "position": 0, "attempt": 1, "duration_ms": 1.5},
    )
    async with store.sessions() as session:
        result = await session.scalar(select(STEPS.c.result).where(STEPS.c.run_id == "wfr_w1", STEPS.c.position == 0))
        status = await session.scalar(select(RUNS.c.status).where(RUNS.c.id == "wfr_w1"))
    assert (result, status) == ({"ok": True}, "running")


async def test_a_step_write_without_the_lease_writes_nothing(store):
    await leased_run(store, "wfr_w2")
    with pytest.raises(LeaseLostError, match="another delivery holds"):
        await store.start_attempt(
            "wfr_w2", "someone-else", position=1, name="second", kind="run", attempt=1, completed=[first_done()]
        )
    assert await state(store, "wfr_w2") == ({"first": ("running", 1)}, [])


async def test_a_step_write_of_a_cancelled_run_writes_nothing(store):
    await leased_run(store, "wfr_w3")
    await store.cancel_run("wfr_w3")
    with pytest.raises(RunCancelledError):
        await store.start_attempt(
            "wfr_w3", OWNER, position=1, name="second", kind="run", attempt=1, completed=[first_done()]
        )
    assert await state(store, "wfr_w3") == ({"first": ("running", 1)}, [])


async def test_a_stale_attempts_result_is_refused_and_the_next_step_not_started(store):
    await leased_run(store, "wfr_w4")
    # Another delivery started attempt 2 of the step meanwhile: attempt 1's result is stale.
    async with store.sessions() as session, session.begin():
        await session.execute(update(STEPS).where(STEPS.c.run_id == "wfr_w4").values(attempts=2))
    with pytest.raises(LeaseLostError, match="attempt 1 of step 'first' is stale"):
        await store.start_attempt(
            "wfr_w4", OWNER, position=1, name="second", kind="run", attempt=1, completed=[first_done()]
        )
    assert await state(store, "wfr_w4") == ({"first": ("running", 2)}, [])


async def test_a_result_for_a_step_never_recorded_is_an_error(store):
    await leased_run(store, "wfr_w5")
    missing = Completed(5, 1, {}, None)
    with pytest.raises(LookupError, match="step at position 5 is not recorded"):
        await store.start_attempt("wfr_w5", OWNER, position=6, name="later", kind="run", attempt=1, completed=[missing])
    assert await state(store, "wfr_w5") == ({"first": ("running", 1)}, [])


async def test_two_results_and_a_start_are_written_together(store):
    await leased_run(store, "wfr_w6")
    await store.start_attempt("wfr_w6", OWNER, position=1, name="second", kind="run", attempt=1)
    both = [first_done(), Completed(1, 2, {"attempt": 1}, 1)]
    await store.start_attempt("wfr_w6", OWNER, position=2, name="third", kind="run", attempt=1, completed=both)
    steps, events = await state(store, "wfr_w6")
    assert steps == {"first": ("completed", 1), "second": ("completed", 1), "third": ("running", 1)}
    assert sorted(event.payload["step"] for event in events) == ["first", "second"]
