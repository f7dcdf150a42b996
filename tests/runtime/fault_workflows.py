"""Workflows for the fault tests: code that tries hard to get past an unfinished operation."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from pydantic import BaseModel

from app.runtime.context import FailureContext, WorkflowContext
from app.runtime.registry import workflow
from tests.runtime.workflows import Recorder, record


async def _awaited(operation: Any) -> Any:
    return await operation


@workflow("swallows-suspension")
async def swallows_suspension(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
    """Each `how` is a way a workflow could treat a pending sleep as if it were over."""
    nap = ctx.sleep("nap", payload.get("seconds", 0.5))
    how = payload["how"]
    if how == "except-base":
        with contextlib.suppress(BaseException):
            await nap
    elif how == "gather-return-exceptions":
        await asyncio.gather(nap, ctx.run("quick", record, ctx.deps, ctx.run_id, "quick"), return_exceptions=True)
    elif how == "asyncio-wait":
        await asyncio.wait([asyncio.ensure_future(nap)])
    elif how == "task-group":
        with contextlib.suppress(BaseException):
            async with asyncio.TaskGroup() as group:
                group.create_task(_awaited(nap))
    await ctx.run("after", record, ctx.deps, ctx.run_id, "after")
    return how


class Verdict(BaseModel):
    status: str
    score: float


@workflow("returns-model")
async def returns_model(ctx: WorkflowContext, payload: dict[str, Any]) -> Verdict:
    await ctx.run("work", record, ctx.deps, ctx.run_id, "work")
    return Verdict(status="ok", score=0.5)


async def remember(failure: FailureContext) -> None:
    failure.deps.failures[failure.run_id] = failure.error


@workflow("returns-set", on_failure=remember)
async def returns_set(ctx: WorkflowContext, payload: dict[str, Any]) -> Any:
    await ctx.run("work", record, ctx.deps, ctx.run_id, "work")
    return {1, 2, 3}


async def fails_once_then_records(failure: FailureContext) -> None:
    recorder: Recorder = failure.deps
    if recorder.hit(failure.run_id, "on-failure") == 1:
        raise ConnectionError("the notification service is down")


async def refuse(recorder: Recorder, run_id: str) -> None:
    recorder.hit(run_id, "refuse")
    raise ValueError("cannot be done")


@workflow("on-failure-retries", on_failure=fails_once_then_records)
async def on_failure_retries(ctx: WorkflowContext, payload: dict[str, Any]) -> None:
    await ctx.run("first", record, ctx.deps, ctx.run_id, "first")
    await ctx.run("refuse", refuse, ctx.deps, ctx.run_id, retries=0)


@workflow("handed-back-steps", on_failure=remember)
async def handed_back_steps(ctx: WorkflowContext, payload: dict[str, Any]) -> list[str]:
    """Seven steps, each handed back to QStash (inline=False): seven publishes per run."""
    done = []
    for i in range(1, 8):
        done.append((await ctx.run(f"step-{i}", record, ctx.deps, ctx.run_id, f"step-{i}", inline=False))["step"])
    return done


async def broken_in_version_1(recorder: Recorder, run_id: str, name: str, failures: int = 99) -> str:
    """Fails while `recorder.version == 1`; in version 2 fails its first `failures` attempts."""
    attempt = recorder.hit(run_id, name)
    if recorder.version == 1 or attempt - recorder.count(run_id, f"{name}@v1") <= failures:
        if recorder.version == 1:
            recorder.hit(run_id, f"{name}@v1")
        raise ConnectionError(f"{name} is broken (attempt {attempt})")
    return name


@workflow("two-branches-fail")
async def two_branches_fail(ctx: WorkflowContext, payload: dict[str, Any]) -> list[str]:
    return list(
        await asyncio.gather(
            ctx.run("left", broken_in_version_1, ctx.deps, ctx.run_id, "left", 0, retries=0),
            ctx.run("right", broken_in_version_1, ctx.deps, ctx.run_id, "right", 0, retries=0),
        )
    )


@workflow("retries-after-resume")
async def retries_after_resume(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
    return await ctx.run("flaky", broken_in_version_1, ctx.deps, ctx.run_id, "flaky", 1, retries=1, backoff=0.1)


@workflow("fragile-child")
async def fragile_child(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
    return await ctx.run("work", broken_in_version_1, ctx.deps, ctx.run_id, "work", 0, retries=0)


@workflow("parent-of-fragile")
async def parent_of_fragile(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
    return await ctx.invoke("child", "fragile-child", {})


async def slow_step(recorder: Recorder, run_id: str, name: str, started: str) -> str:
    recorder.hit(run_id, name)
    await asyncio.sleep(1.5)
    return name


@workflow("busy-when-notified")
async def busy_when_notified(ctx: WorkflowContext, payload: dict[str, Any]) -> Any:
    """One branch waits for an event while the other works: the notify lands on a held lease."""
    outcome, _ = await asyncio.gather(
        ctx.wait_for_event("approval", payload["event"], timeout=60),
        ctx.run("work", slow_step, ctx.deps, ctx.run_id, "work", payload["event"]),
    )
    await ctx.run("after", record, ctx.deps, ctx.run_id, "after")
    return outcome["data"]


async def remember_fields(failure: FailureContext) -> None:
    failure.deps.failures[failure.run_id] = (failure.step, failure.error_type, failure.message, failure.attempt)


@workflow("fails-with-fields", on_failure=remember_fields)
async def fails_with_fields(ctx: WorkflowContext, payload: dict[str, Any]) -> None:
    await ctx.run("first", record, ctx.deps, ctx.run_id, "first")
    await ctx.run("refuse", refuse, ctx.deps, ctx.run_id, retries=1, backoff=0.1)


FAULTS = [
    fails_with_fields,
    busy_when_notified,
    two_branches_fail,
    retries_after_resume,
    fragile_child,
    parent_of_fragile,
swallows_suspension, returns_model, returns_set, on_failure_retries, handed_back_steps]
