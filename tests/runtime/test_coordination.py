"""Runtime part two: wait/notify, child runs, parallel steps, cancel, resume, the watchdog."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from app.config import DEV_QSTASH_TOKEN
from app.devqstash.models import QStashEvent
from app.runtime.models import WorkflowRun, WorkflowWaiter
from tests.runtime.coordination_workflows import COORDINATION
from tests.runtime.workflows import Recorder
from tests.support.service import live_service


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


async def test_notify_after_wait_wakes_the_waiter(database_url, recorder):
    async with live_service(database_url, COORDINATION, deps=recorder) as svc:
        run_id = await svc.runtime.trigger("waiter", {"event": "approved:1"})
        await svc.wait(run_id, statuses={"waiting"})
        assert await svc.runtime.notify("approved:1", {"by": "ops"}) == [run_id]
        run = await svc.wait(run_id)
        assert run.result == {"data": {"by": "ops"}, "timed_out": False}
        assert recorder.count(run_id, "after-wait") == 1


async def test_notify_before_wait_is_kept_for_the_first_waiter(database_url, recorder):
    async with live_service(database_url, COORDINATION, deps=recorder) as svc:
        assert await svc.runtime.notify("early:1", {"n": 1}) == []
        first = await svc.runtime.trigger("waiter", {"event": "early:1", "timeout": 2})
        second = await svc.runtime.trigger("waiter", {"event": "early:1", "timeout": 2})
        results = sorted([(await svc.wait(first)).result["timed_out"], (await svc.wait(second)).result["timed_out"]])
        assert results == [False, True]  # one consumed the kept notification, the other timed out


async def test_wait_times_out(database_url, recorder):
    async with live_service(database_url, COORDINATION, deps=recorder) as svc:
        run_id = await svc.runtime.trigger("waiter", {"event": "never", "timeout": 1})
        run = await svc.wait(run_id)
        assert run.result == {"data": None, "timed_out": True}


async def test_notify_racing_the_timeout_ends_exactly_one_way(database_url, recorder):
    async with live_service(database_url, COORDINATION, deps=recorder) as svc:
        runs = []
        for i in range(6):
            run_id = await svc.runtime.trigger("waiter", {"event": f"race:{i}", "timeout": 1})
            runs.append((i, run_id))
        await asyncio.gather(*(svc.wait(r, statuses={"waiting"}) for _, r in runs))
        await asyncio.sleep(0.9 + 0.03 * len(runs))
        woken = {i: await svc.runtime.notify(f"race:{i}", {"i": i}) for i, _ in runs}
        for i, run_id in runs:
            run = await svc.wait(run_id)
            assert run.status == "completed"
            if woken[i] == [run_id]:
                assert run.result == {"data": {"i": i}, "timed_out": False}
            else:
                assert woken[i] == [] and run.result == {"data": None, "timed_out": True}
            events = [
                e
                for e in await svc.events(run_id)
                if e.payload.get("step") == "approval" and e.type == "step.completed"
            ]
            assert len(events) == 1
            assert recorder.count(run_id, "after-wait") == 1


async def test_wake_ups_of_an_idle_run_ride_on_the_one_already_on_its_way(database_url, recorder):
    """Two resolutions before the run is delivered again: the second sends no wake-up of its own."""
    async with live_service(database_url, COORDINATION, deps=recorder) as svc:
        run_id = await svc.runtime.trigger("waits-for-two", {"events": ["a:1", "b:1"]})
        while (await svc.run(run_id)).lease_owner is not None or len(await _waiters(svc, run_id)) < 2:
            await asyncio.sleep(0.02)
        keep = timedelta(minutes=1)
        first = await svc.runtime.store.notify("a:1", "a", keep_for=keep)  # the store's half: nothing sent yet
        second = await svc.runtime.store.notify("b:1", "b", keep_for=keep)
        assert ([w.ref.run_id for w in first[0]], first[1], second) == ([run_id], [run_id], ([], [run_id]))
        assert (await svc.run(run_id)).wake_pending  # the doorbell says a wake-up is on its way
        await svc.runtime.flush(first[0])
        run = await svc.wait(run_id)
        assert (run.status, run.result, run.wake_pending) == ("completed", ["a", "b"], False)


async def _waiters(svc, run_id: str) -> list[int]:  # noqa: ANN001
    async with svc.services.sessions() as session:
        return list(await session.scalars(select(WorkflowWaiter.id).where(WorkflowWaiter.run_id == run_id)))


async def test_ctx_notify_wakes_another_run(database_url, recorder):
    async with live_service(database_url, COORDINATION, deps=recorder) as svc:
        waiting = await svc.runtime.trigger("waiter", {"event": "from-step"})
        await svc.wait(waiting, statuses={"waiting"})
        notifier = await svc.runtime.trigger("notifier", {"event": "from-step"})
        assert (await svc.wait(notifier)).result == [waiting]
        assert (await svc.wait(waiting)).result == {"data": {"from": notifier}, "timed_out": False}


async def test_parent_with_20_children_some_failing_resumes_once_all_finished(database_url, recorder):
    async with live_service(database_url, COORDINATION, deps=recorder) as svc:
        parent_id = await svc.runtime.trigger("parent", {"children": 20})
        run = await svc.wait(parent_id, timeout=60)
        assert run.status == "completed", run.error
        assert len(run.result) == 20
        for i, outcome in enumerate(run.result):
            if i % 4 == 0:
                assert f"child {i} cannot be done" in outcome["error"]
            else:
                assert outcome == {"result": i * 10}
        async with svc.services.sessions() as session:
            children = list(await session.scalars(select(WorkflowRun).where(WorkflowRun.parent_run_id == parent_id)))
        assert len(children) == 20
        assert all(recorder.count(c.id, "child-work") == 1 for c in children)
        assert recorder.count(parent_id, "after-children") == 1
        last_child = max(recorder.times[(c.id, "child-work")] for c in children)
        assert recorder.times[(parent_id, "after-children")] > last_child  # only once all finished
        async with svc.services.sessions() as session:
            answers = list(await session.scalars(select(QStashEvent.details).where(QStashEvent.state == "RETRY")))
        assert [a for a in answers if a.get("responseStatus") == 429] == []  # wake-ups ring, never 429


async def test_three_parallel_steps_run_concurrently_and_replay_runs_none_again(database_url, recorder):
    async with live_service(database_url, COORDINATION, deps=recorder) as svc:
        run_id = await svc.runtime.trigger("parallel", {})
        run = await svc.wait(run_id)
        assert run.status == "completed", run.error
        starts = [recorder.times[(run_id, f"slow-{i}")] for i in range(3)]
        assert max(starts) < min(run.result)  # all three started before any of them finished
        assert recorder.times[(run_id, "after")] > max(run.result)  # and "after" only after all
        assert [recorder.count(run_id, f"slow-{i}") for i in range(3)] == [1, 1, 1]
        assert recorder.count(run_id, "after") == 1


async def test_cancel_while_sleeping_runs_nothing_more(database_url, recorder):
    async with live_service(database_url, COORDINATION, deps=recorder) as svc:
        run_id = await svc.runtime.trigger("sleep-then-step", {"sleep": 1})
        await svc.wait(run_id, statuses={"sleeping"})
        assert await svc.runtime.cancel(run_id) == [run_id]
        await svc.settled(run_id)  # the wake-up message came and went
        run = await svc.run(run_id)
        assert run.status == "cancelled"
        assert recorder.count(run_id, "after") == 0
        assert [e.type for e in await svc.events(run_id)][-1] == "workflow.cancelled"


async def test_cancel_while_waiting_drops_the_wait(database_url, recorder):
    async with live_service(database_url, COORDINATION, deps=recorder) as svc:
        run_id = await svc.runtime.trigger("waiter", {"event": "cancelled-wait", "timeout": 1})
        await svc.wait(run_id, statuses={"waiting"})
        await svc.runtime.cancel(run_id)
        assert await svc.runtime.notify("cancelled-wait", {}) == []
        await svc.settled(run_id)  # the timeout message came and went
        assert (await svc.run(run_id)).status == "cancelled"
        assert recorder.count(run_id, "after-wait") == 0


async def test_cancel_while_a_child_runs_cancels_the_child(database_url, recorder):
    async with live_service(database_url, COORDINATION, deps=recorder) as svc:
        parent_id = await svc.runtime.trigger("invoke-sleeper", {})
        await svc.wait(parent_id, statuses={"waiting"})
        async with svc.services.sessions() as session:
            child_id = await session.scalar(select(WorkflowRun.id).where(WorkflowRun.parent_run_id == parent_id))
        await svc.wait(child_id, statuses={"sleeping"})
        assert set(await svc.runtime.cancel(parent_id)) == {parent_id, child_id}
        await svc.settled(parent_id, child_id)  # the child's wake-up came and went
        assert (await svc.run(child_id)).status == "cancelled"
        assert recorder.count(child_id, "child-work") == 0


async def test_resuming_a_run_failed_at_step_5_skips_steps_1_to_4(database_url, recorder):
    async with live_service(database_url, COORDINATION, deps=recorder) as svc:
        run_id = await svc.runtime.trigger("fails-at-five", {})
        assert (await svc.wait(run_id)).status == "failed"
        recorder.version = 2  # the fix is deployed
        await svc.runtime.resume(run_id)
        run = await svc.wait(run_id)
        assert run.status == "completed", run.error
        assert run.result == [f"step-{i}" for i in range(1, 8)]
        assert [recorder.count(run_id, f"step-{i}") for i in range(1, 8)] == [1, 1, 1, 1, 2, 1, 1]
        assert "workflow.resumed" in [e.type for e in await svc.events(run_id)]


async def test_resume_refuses_a_run_that_has_not_failed(database_url, recorder):
    from app.errors import Conflict

    async with live_service(database_url, COORDINATION, deps=recorder) as svc:
        run_id = await svc.runtime.trigger("waiter", {"event": "x"})
        await svc.wait(run_id, statuses={"waiting"})
        with pytest.raises(Conflict):
            await svc.runtime.resume(run_id)


async def test_watchdog_recovers_a_run_whose_continuation_message_was_deleted(database_url, recorder):
    async with live_service(database_url, COORDINATION, deps=recorder) as svc:  # the shipped watchdog settings
        # A nap long enough that its wake-up is still waiting in QStash when the test deletes it,
        # however loaded the machine.
        run_id = await svc.runtime.trigger("sleep-then-step", {"sleep": 4})
        await svc.wait(run_id, statuses={"sleeping"})
        while (await svc.run(run_id)).lease_owner is not None:  # the wake message is published
            await asyncio.sleep(0.02)
        async with httpx.AsyncClient() as client:  # lose every pending message, as an outside queue might
            response = await client.delete(
                f"{svc.base_url}/qstash/v2/messages", headers={"Authorization": f"Bearer {DEV_QSTASH_TOKEN}"}
            )
            assert response.status_code == 200 and response.json()["cancelled"] >= 1
        run = await svc.wait(run_id, timeout=60)  # overdue for WORKFLOW_WATCHDOG_STUCK_AFTER_S, then re-published
        assert run.status == "completed"
        assert recorder.count(run_id, "after") == 1
        assert "workflow.stuck" in [e.type for e in await svc.events(run_id)]
