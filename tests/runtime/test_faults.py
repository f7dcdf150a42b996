"""Runtime under faults: nothing a workflow or the infrastructure does can lose, stall or
wrongly fail a run (issue "Runtime under faults")."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import pytest
from sqlalchemy import func, select

from app.devqstash.models import QStashEvent
from app.runtime.errors import StepOutputTooLarge
from app.runtime.models import ON_FAILURE_POSITION, WorkflowOutbox, WorkflowWaiter
from tests.runtime.coordination_workflows import COORDINATION
from tests.runtime.fault_workflows import FAULTS
from tests.runtime.workflows import Recorder
from tests.support.databases import plain_pg_url
from tests.support.faults import FailingPublishes
from tests.support.service import live_service, non_serving


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def completion_order(events, *steps: str) -> list[str]:  # noqa: ANN001
    done = [e.payload["step"] for e in events if e.type == "step.completed"]
    return [step for step in done if step in steps]


@pytest.mark.parametrize("how", ["except-base", "gather-return-exceptions", "asyncio-wait", "task-group"])
async def test_a_workflow_cannot_get_past_a_pending_sleep_however_it_handles_exceptions(database_url, recorder, how):
    async with live_service(database_url, FAULTS, deps=recorder) as svc:
        run_id = await svc.runtime.trigger("swallows-suspension", {"how": how})
        run = await svc.wait(run_id)
        assert run.status == "completed", run.error
        assert run.result == how
        assert completion_order(await svc.events(run_id), "nap", "after") == ["nap", "after"]
        assert recorder.count(run_id, "after") == 1


async def test_a_pydantic_result_is_stored_as_its_json(database_url, recorder):
    async with live_service(database_url, FAULTS, deps=recorder) as svc:
        run = await svc.wait(await svc.runtime.trigger("returns-model", {}))
        assert run.status == "completed", run.error
        assert run.result == {"status": "ok", "score": 0.5}


async def test_a_result_that_is_not_json_fails_the_run_with_a_clear_reason(database_url, recorder):
    async with live_service(database_url, FAULTS, deps=recorder) as svc:
        run_id = await svc.runtime.trigger("returns-set", {})
        run = await svc.wait(run_id)
        assert run.status == "failed"
        assert "workflow result is not JSON-serialisable" in run.error
        assert "not JSON-serialisable" in recorder.failures[run_id]
        assert recorder.count(run_id, "work") == 1


async def test_a_failing_run_stays_failing_while_its_on_failure_handler_waits_to_retry(database_url, recorder):
    async with live_service(database_url, FAULTS, deps=recorder, workflow_retry_base_delay_s=3.0) as svc:
        run_id = await svc.runtime.trigger("on-failure-retries", {})
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            steps = {s.position: s for s in await svc.steps(run_id)}
            handler = steps.get(ON_FAILURE_POSITION)
            if handler is not None and handler.status == "retry_scheduled":
                break
            assert asyncio.get_running_loop().time() < deadline, "on_failure never scheduled its retry"
            await asyncio.sleep(0.05)
        assert (await svc.run(run_id)).status == "failing"
        run = await svc.wait(run_id)
        assert run.status == "failed" and "cannot be done" in run.error
        assert recorder.count(run_id, "on-failure") == 2
        assert recorder.count(run_id, "first") == 1 and recorder.count(run_id, "refuse") == 1


async def test_publishes_answered_500_and_429_never_fail_a_run(database_url, recorder):
    holder: dict[str, FailingPublishes] = {}

    def wrap(app):  # noqa: ANN001, ANN202
        holder["edge"] = FailingPublishes(app)
        return holder["edge"]

    async with live_service(database_url, FAULTS, deps=recorder, wrap=wrap) as svc:
        runs = [await svc.runtime.trigger("handed-back-steps", {}) for _ in range(3)]
        holder["edge"].fail_next(6)  # the next hand-backs of these runs fail to publish
        for run_id in runs:
            run = await svc.wait(run_id, timeout=90)
            assert run.status == "completed", run.error
            assert [recorder.count(run_id, f"step-{i}") for i in range(1, 8)] == [1] * 7
        assert holder["edge"].refused == 6
        assert recorder.failures == {}


async def _terminate_connections(admin_url: str, database: str, until: asyncio.Event) -> int:
    terminated = 0
    conn = await asyncpg.connect(admin_url)
    try:
        while not until.is_set():
            rows = await conn.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                database,
            )
            terminated += len(rows)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(until.wait(), 0.2)
    finally:
        await conn.close()
    return terminated


async def test_terminated_database_connections_never_fail_a_run(database_url, recorder):
    if not database_url.startswith("postgresql"):
        pytest.skip("terminating backends is a Postgres fault")
    admin_url, database = plain_pg_url(database_url).rsplit("/", 1)
    async with live_service(database_url, FAULTS, deps=recorder) as svc:
        runs = [await svc.runtime.trigger("handed-back-steps", {}) for _ in range(5)]
        stop = asyncio.Event()
        killer = asyncio.create_task(_terminate_connections(f"{admin_url}/postgres", database, stop))
        await asyncio.sleep(3)  # the fault lasts 3 s, whatever the runs do meanwhile
        stop.set()
        assert await killer > 0
        for run_id in runs:
            run = await svc.wait(run_id, timeout=120)
            assert run.status == "completed", run.error
            assert all(recorder.count(run_id, f"step-{i}") >= 1 for i in range(1, 8))
        assert recorder.failures == {}


async def test_an_eager_drive_stopped_by_qstash_leaves_its_run_to_the_sweep(database_url, recorder):
    """A drive whose hand-back QStash refuses (500/429 on every publish for a while) stops, like a
    delivery answered 503; its run's outbox row, committed before it began, stays the safety net
    until the watchdog's sweep gets it through."""
    holder: dict[str, FailingPublishes] = {}

    def wrap(app):  # noqa: ANN001, ANN202
        holder["edge"] = FailingPublishes(app)
        return holder["edge"]

    async with live_service(database_url, FAULTS + COORDINATION, deps=recorder, wrap=wrap) as svc:
        holder["edge"].fail_next(3)  # the nap's hand-back, the drive's hand-over, the sweep's first send
        run_id = await svc.runtime.trigger("sleep-then-step", {"sleep": 0.1})  # driven at once, no message
        run = await svc.wait(run_id, timeout=60)
        assert run.status == "completed", run.error
        assert holder["edge"].refused == 3
        assert [recorder.count(run_id, step) for step in ("before", "after")] == [1, 1]
        await svc.settled(run_id)  # the outbox row is gone once a send got through
        assert await _outbox_rows(svc, run_id) == 0


async def _outbox_rows(svc, run_id: str) -> int:  # noqa: ANN001
    async with svc.services.sessions() as session:
        return await session.scalar(
            select(func.count()).select_from(WorkflowOutbox).where(WorkflowOutbox.run_id == run_id)
        )


async def test_a_run_triggered_while_qstash_refuses_publishes_starts_later(database_url, recorder):
    holder: dict[str, FailingPublishes] = {}

    def wrap(app):  # noqa: ANN001, ANN202
        holder["edge"] = FailingPublishes(app)
        return holder["edge"]

    async with live_service(database_url, FAULTS, deps=recorder, wrap=wrap) as svc, non_serving(svc, FAULTS) as other:
        holder["edge"].fail_next(1)
        # A process that does not serve publishes the start: accepted, the start waits in the outbox.
        run_id = await other.runtime.trigger("returns-model", {})
        assert await _outbox_rows(svc, run_id) == 1
        run = await svc.wait(run_id, timeout=60)
        assert run.status == "completed", run.error
        assert holder["edge"].refused == 1


@pytest.mark.parametrize(
    ("workflow", "result"),
    [("two-branches-fail", ["left", "right"]), ("retries-after-resume", "flaky"), ("parent-of-fragile", "work")],
    ids=["parallel-branches", "step-retried-after-resume", "failed-child"],
)
async def test_resume_reopens_every_failed_step_and_child_with_fresh_messages(database_url, recorder, workflow, result):
    async with live_service(database_url, FAULTS, deps=recorder) as svc:
        run_id = await svc.runtime.trigger(workflow, {})
        assert (await svc.wait(run_id)).status == "failed"
        recorder.version = 2  # the fix is deployed
        await svc.runtime.resume(run_id)
        run = await svc.wait(run_id)
        assert run.status == "completed", run.error
        assert run.result == result


async def _waiting(svc, event_id: str) -> bool:  # noqa: ANN001
    async with svc.services.sessions() as session:
        return await session.scalar(select(WorkflowWaiter.id).where(WorkflowWaiter.event_id == event_id)) is not None


async def test_a_wake_up_that_meets_a_held_lease_is_acknowledged_and_still_acted_on(database_url, recorder):
    async with live_service(database_url, FAULTS, deps=recorder) as svc:
        run_id = await svc.runtime.trigger("busy-when-notified", {"event": "ok:1"})
        while recorder.count(run_id, "work") == 0 or not await _waiting(svc, "ok:1"):
            await asyncio.sleep(0.02)  # the slow branch holds the lease, the other one waits
        assert await svc.runtime.notify("ok:1", {"by": "ops"}) == [run_id]
        run = await svc.wait(run_id)
        assert run.status == "completed", run.error
        assert run.result == {"by": "ops"}
        async with svc.services.sessions() as session:
            rows = await session.scalars(select(QStashEvent).where(QStashEvent.url.contains("/workflows/")))
            retried = [(e.state, e.details) for e in rows if e.state in ("RETRY", "FAILED")]
        assert retried == []  # the doorbell, not QStash's retries


async def test_on_failure_gets_the_failure_in_fields(database_url, recorder):
    async with live_service(database_url, FAULTS, deps=recorder) as svc:
        run_id = await svc.runtime.trigger("fails-with-fields", {})
        run = await svc.wait(run_id)
        assert run.status == "failed"
        assert recorder.failures[run_id] == ("refuse", "ValueError", "cannot be done", 2)
        assert run.failure == {"step": "refuse", "error_type": "ValueError", "message": "cannot be done", "attempt": 2}
        assert run.error == "step 'refuse' failed: ValueError: cannot be done"


async def test_a_notify_sent_again_by_its_step_wakes_nobody_twice_and_keeps_nothing(database_url, recorder):
    async with live_service(database_url, COORDINATION, deps=recorder) as svc:
        waiting = await svc.runtime.trigger("waiter", {"event": "once:1", "timeout": 2})
        await svc.wait(waiting, statuses={"waiting"})
        first = await svc.runtime.notify("once:1", {"n": 1}, source="wfr_sender:3")
        again = await svc.runtime.notify("once:1", {"n": 1}, source="wfr_sender:3")  # the step's retry
        assert first == again == [waiting]
        late = await svc.runtime.trigger("waiter", {"event": "once:1", "timeout": 2})
        assert (await svc.wait(late)).result == {"data": None, "timed_out": True}  # no stray notification
        assert (await svc.wait(waiting)).result == {"data": {"n": 1}, "timed_out": False}


async def test_notify_data_over_the_output_limit_is_refused(database_url, recorder):
    async with live_service(database_url, COORDINATION, deps=recorder, workflow_max_step_output_bytes=1024) as svc:
        with pytest.raises(StepOutputTooLarge, match="WORKFLOW_MAX_STEP_OUTPUT_BYTES=1024"):
            await svc.runtime.notify("big:1", {"blob": "x" * 2000})
