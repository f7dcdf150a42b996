"""Workflows for the coordination tests: events, children, parallel steps, cancel and resume."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from app.runtime.context import WorkflowContext
from app.runtime.errors import NonRetryableError, StepFailedError
from app.runtime.registry import workflow
from tests.runtime.workflows import Recorder, record


@workflow("waiter")
async def waiter(ctx: WorkflowContext, payload: dict[str, Any]) -> dict[str, Any]:
    outcome = await ctx.wait_for_event("approval", payload["event"], timeout=payload.get("timeout", 30))
    await ctx.run("after-wait", record, ctx.deps, ctx.run_id, "after-wait")
    return outcome


@workflow("waits-for-two")
async def waits_for_two(ctx: WorkflowContext, payload: dict[str, Any]) -> list[Any]:
    first, second = await asyncio.gather(
        *(ctx.wait_for_event(f"wait-{i}", event, timeout=60) for i, event in enumerate(payload["events"]))
    )
    return [first["data"], second["data"]]


@workflow("notifier")
async def notifier(ctx: WorkflowContext, payload: dict[str, Any]) -> list[str]:
    return await ctx.notify("tell", payload["event"], {"from": ctx.run_id})


async def child_work(recorder: Recorder, run_id: str, index: int) -> int:
    recorder.hit(run_id, "child-work")
    if index % 4 == 0:
        raise NonRetryableError(f"child {index} cannot be done")
    return index * 10


@workflow("child")
async def child(ctx: WorkflowContext, payload: dict[str, Any]) -> int:
    if payload.get("sleep"):
        await ctx.sleep("child-nap", payload["sleep"])
    return await ctx.run("work", child_work, ctx.deps, ctx.run_id, payload["index"])


@workflow("parent")
async def parent(ctx: WorkflowContext, payload: dict[str, Any]) -> list[Any]:
    outcomes = await asyncio.gather(
        *(
            ctx.invoke(f"child-{i}", "child", {"index": i, "sleep": payload.get("sleep", 0)})
            for i in range(payload["children"])
        ),
        return_exceptions=True,
    )
    await ctx.run("after-children", record, ctx.deps, ctx.run_id, "after-children")
    return [{"error": o.error} if isinstance(o, StepFailedError) else {"result": o} for o in outcomes]


async def slow(recorder: Recorder, run_id: str, name: str) -> float:
    recorder.hit(run_id, name)
    await asyncio.sleep(1.0)
    return time.monotonic()  # the Recorder's clock


@workflow("parallel")
async def parallel(ctx: WorkflowContext, payload: dict[str, Any]) -> list[float]:
    finished = await asyncio.gather(*(ctx.run(f"slow-{i}", slow, ctx.deps, ctx.run_id, f"slow-{i}") for i in range(3)))
    await ctx.sleep("replay-after", 0.1)  # the next delivery replays the three steps
    await ctx.run("after", record, ctx.deps, ctx.run_id, "after")
    return finished


@workflow("sleep-then-step")
async def sleep_then_step(ctx: WorkflowContext, payload: dict[str, Any]) -> None:
    await ctx.run("before", record, ctx.deps, ctx.run_id, "before")
    await ctx.sleep("nap", payload.get("sleep", 2))
    await ctx.run("after", record, ctx.deps, ctx.run_id, "after")


async def fifth(recorder: Recorder, run_id: str) -> str:
    recorder.hit(run_id, "step-5")
    if recorder.version == 1:
        raise NonRetryableError("step 5 is broken in version 1")
    return "step-5"


@workflow("fails-at-five")
async def fails_at_five(ctx: WorkflowContext, payload: dict[str, Any]) -> list[str]:
    done = []
    for i in range(1, 8):
        if i == 5:
            done.append(await ctx.run("step-5", fifth, ctx.deps, ctx.run_id))
        else:
            done.append((await ctx.run(f"step-{i}", record, ctx.deps, ctx.run_id, f"step-{i}"))["step"])
    return done


@workflow("invoke-sleeper")
async def invoke_sleeper(ctx: WorkflowContext, payload: dict[str, Any]) -> Any:
    return await ctx.invoke("slow-child", "child", {"index": 1, "sleep": 2})


COORDINATION = [
    waiter,
    waits_for_two,
    notifier,
    child,
    parent,
    parallel,
    sleep_then_step,
    fails_at_five,
    invoke_sleeper,
]
