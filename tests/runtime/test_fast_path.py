"""The fast path: a step's result rides on the delivery's next write, but is never held back.

An inline step's result, its `step.completed` event and the next step's start are written in one
transaction. When no next write comes soon (the other branch of a gather runs long), the result
is written on its own: a parallel step can see its sibling's result and event committed while
it still runs.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from app.runtime.context import WorkflowContext
from app.runtime.models import Event, WorkflowStep
from app.runtime.registry import workflow
from tests.support.service import live_service


@dataclass
class Probe:
    sessions: Any = None
    seen: dict[str, bool] = field(default_factory=dict)


async def quick(run_id: str) -> str:
    return "quick"


async def watch_sibling(probe: Probe, run_id: str) -> bool:
    """Runs until the sibling's result and its event are committed (at most 10 s)."""
    for _ in range(1000):
        async with probe.sessions() as session:
            status = await session.scalar(
                select(WorkflowStep.status).where(WorkflowStep.run_id == run_id, WorkflowStep.name == "quick")
            )
            events = await session.scalars(
                select(Event.payload).where(Event.workflow_id == run_id, Event.type == "step.completed")
            )
            event = any(payload.get("step") == "quick" for payload in events)
        if status == "completed" and event:
            probe.seen[run_id] = True
            return True
        await asyncio.sleep(0.01)
    return False


@workflow("quick-and-watcher")
async def quick_and_watcher(ctx: WorkflowContext, payload: dict[str, Any]) -> list[Any]:
    return list(
        await asyncio.gather(
            ctx.run("quick", quick, ctx.run_id),
            ctx.run("watcher", watch_sibling, ctx.deps, ctx.run_id),
        )
    )


@workflow("three-in-a-row")
async def three_in_a_row(ctx: WorkflowContext, payload: dict[str, Any]) -> list[str]:
    return [await ctx.run(f"s{i}", quick, ctx.run_id) for i in range(3)]


async def test_results_ride_on_the_next_write_and_are_never_held_back(database_url):
    probe = Probe()
    async with live_service(database_url, [quick_and_watcher, three_in_a_row], deps=probe) as svc:
        probe.sessions = svc.services.sessions
        parallel = await svc.runtime.trigger("quick-and-watcher", {})
        sequential = await svc.runtime.trigger("three-in-a-row", {})
        run = await svc.wait(parallel)
        assert run.status == "completed", run.error
        assert run.result == ["quick", True]  # the watcher saw its sibling committed while it ran
        run = await svc.wait(sequential)
        assert run.status == "completed", run.error
        steps = await svc.steps(sequential)
        assert [(s.name, s.status, s.attempts) for s in steps] == [(f"s{i}", "completed", 1) for i in range(3)]
        events = [(e.type, e.payload.get("step")) for e in await svc.events(sequential)]
        assert events == [
            ("workflow.started", None),
            ("step.completed", "s0"),
            ("step.completed", "s1"),
            ("step.completed", "s2"),
            ("workflow.completed", None),
        ]
