"""Eager drives: a serving process drives the runs it starts or wakes at once.

The run's outbox row is the durable safety net meanwhile; no QStash message is published for a
run its drive took care of. Every test here holds every QStash delivery to `/workflows/*` at the
door (`HeldDeliveries`), so whatever moves a run while they are held was an eager drive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select
from starlette.types import ASGIApp, Receive, Scope, Send

from app.runtime.context import WorkflowContext
from app.runtime.eager import EAGER_LIMIT
from app.runtime.models import WorkflowOutbox, WorkflowRun
from app.runtime.registry import workflow
from tests.runtime.coordination_workflows import COORDINATION, slow
from tests.runtime.workflows import ALL, Recorder
from tests.support.service import LiveService, live_service, non_serving


class HeldDeliveries:
    """Wraps the app: QStash deliveries (`POST /workflows/...`) wait at the door until `release()`."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.arrived = 0
        self.answers: list[int] = []

    def __call__(self, app: ASGIApp) -> ASGIApp:
        async def held(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or not scope["path"].startswith("/workflows/"):
                await app(scope, receive, send)
                return
            self.arrived += 1
            await self.gate.wait()

            async def answer(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    self.answers.append(message["status"])
                await send(message)

            await app(scope, receive, answer)

        return held

    def release(self) -> None:
        self.gate.set()


async def no_outbox_row(svc: LiveService, run_id: str) -> bool:
    """True when the outbox holds no row for the run."""
    async with svc.services.sessions() as session:
        return not list(await session.scalars(select(WorkflowOutbox.id).where(WorkflowOutbox.run_id == run_id)))


async def until(condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, f"not {what} after {timeout} s"
        await asyncio.sleep(0.02)


async def released(held: HeldDeliveries, at_least: int) -> None:
    """Wait for `at_least` safety-net deliveries to arrive, let them all in; each must be acknowledged."""

    async def arrived() -> bool:
        return held.arrived >= at_least

    async def answered() -> bool:
        return len(held.answers) == held.arrived

    await until(arrived, f"{at_least} deliveries arrived")
    held.release()
    await until(answered, "every delivery answered")
    assert all(status == 200 for status in held.answers), held.answers


async def no_message_was_needed(svc: LiveService, held: HeldDeliveries, *run_ids: str) -> None:
    """The runs' outbox rows are gone (nothing left to bring them back) and no delivery ever came."""
    await svc.settled(*run_ids)
    assert held.arrived == 0


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


async def test_a_run_started_in_a_serving_process_completes_before_any_delivery(database_url, recorder):
    held = HeldDeliveries()
    async with live_service(database_url, ALL, deps=recorder, wrap=held) as svc:
        run_id = await svc.runtime.trigger("seven-steps", {})
        run = await svc.wait(run_id)
        assert run.status == "completed"
        await no_message_was_needed(svc, held, run_id)  # the trigger's own process drove the run
        assert [recorder.count(run_id, f"step-{i}") for i in range(1, 8)] == [1] * 7
        types = [event.type for event in await svc.events(run_id)]
        assert types.count("workflow.completed") == 1 and types.count("step.completed") == 7


async def test_children_and_the_parent_they_wake_are_driven_at_once(database_url, recorder):
    held = HeldDeliveries()
    count = 5
    async with live_service(database_url, COORDINATION, deps=recorder, wrap=held) as svc:
        parent_id = await svc.runtime.trigger("parent", {"children": count})
        run = await svc.wait(parent_id)
        assert run.status == "completed"
        assert len(run.result) == count  # children 0 and 4 fail on purpose, the parent carries on
        async with svc.services.sessions() as session:
            children = list(await session.scalars(select(WorkflowRun.id).where(WorkflowRun.parent_run_id == parent_id)))
        assert len(children) == count
        await no_message_was_needed(svc, held, parent_id, *children)
        assert [recorder.count(child, "child-work") for child in children] == [1] * count


@workflow("one-slow-step")
async def one_slow_step(ctx: WorkflowContext, payload: dict[str, Any]) -> float:
    return await ctx.run("slow", slow, ctx.deps, ctx.run_id, "slow")  # 1 s


async def test_runs_woken_past_the_drives_at_once_queue_for_a_free_one(database_url, recorder):
    held = HeldDeliveries()
    async with live_service(database_url, [one_slow_step], deps=recorder, wrap=held) as svc:
        # Each drive takes a second: the last four wait for a free one instead of a message.
        run_ids = [await svc.runtime.trigger("one-slow-step", {}) for _ in range(EAGER_LIMIT + 4)]
        for run_id in run_ids:
            assert (await svc.wait(run_id)).status == "completed"
        await no_message_was_needed(svc, held, *run_ids)
        assert [recorder.count(run_id, "slow") for run_id in run_ids] == [1] * len(run_ids)


async def test_notify_drives_the_waiter_at_once(database_url, recorder):
    held = HeldDeliveries()
    async with live_service(database_url, COORDINATION, deps=recorder, wrap=held) as svc:
        run_id = await svc.runtime.trigger("waiter", {"event": "eager:1"})
        await svc.wait(run_id, statuses={"waiting"})
        assert await svc.runtime.notify("eager:1", {"by": "ops"}) == [run_id]
        run = await svc.wait(run_id)
        assert run.result == {"data": {"by": "ops"}, "timed_out": False}
        assert recorder.count(run_id, "after-wait") == 1
        # Neither the start nor the notify's wake-up needed a message; the wait's timeout message
        # (due in 30 s) is the only one the run ever published.
        await until(lambda: no_outbox_row(svc, run_id), "the outbox rows deleted")
        assert held.arrived == 0


async def test_a_process_that_does_not_serve_leaves_the_run_to_its_delivery(database_url, recorder):
    held = HeldDeliveries()
    async with (
        live_service(database_url, ALL, deps=recorder, wrap=held) as svc,
        non_serving(svc, ALL, deps=recorder) as other,  # a second process's handle: the CLI's, a script's
    ):
        waiting = await other.runtime.trigger("seven-steps", {})
        driven = await svc.runtime.trigger("seven-steps", {})
        assert (await svc.wait(driven)).status == "completed"
        assert (await svc.run(waiting)).status == "pending"  # it waits for its delivery
        await released(held, at_least=1)
        assert (await svc.wait(waiting)).status == "completed"
        assert [recorder.count(waiting, f"step-{i}") for i in range(1, 8)] == [1] * 7
