"""Workflows the runtime tests run. Steps record every execution in a `Recorder` (the deps)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from app.runtime.context import FailureContext, WorkflowContext
from app.runtime.errors import NonRetryableError
from app.runtime.registry import workflow


@dataclass
class Recorder:
    executions: Counter[tuple[str, str]] = field(default_factory=Counter)
    order: defaultdict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    failures: dict[str, str] = field(default_factory=dict)
    times: dict[tuple[str, str], float] = field(default_factory=dict)
    version: int = 1

    def hit(self, run_id: str, step: str) -> int:
        self.executions[(run_id, step)] += 1
        self.order[run_id].append(step)
        self.times[(run_id, step)] = time.monotonic()
        return self.executions[(run_id, step)]

    def count(self, run_id: str, step: str) -> int:
        return self.executions[(run_id, step)]


async def record(recorder: Recorder, run_id: str, step: str) -> dict[str, Any]:
    recorder.hit(run_id, step)
    return {"step": step}


@workflow("seven-steps")
async def seven_steps(ctx: WorkflowContext, payload: dict[str, Any]) -> list[str]:
    done = []
    for i in range(1, 8):
        result = await ctx.run(f"step-{i}", record, ctx.deps, ctx.run_id, f"step-{i}")
        done.append(result["step"])
    return done


async def flaky(recorder: Recorder, run_id: str, failures: int) -> str:
    attempt = recorder.hit(run_id, "flaky")
    if attempt <= failures:
        raise ConnectionError(f"flaky failure {attempt}")
    return f"succeeded on attempt {attempt}"


@workflow("flaky")
async def flaky_workflow(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
    await ctx.run("before", record, ctx.deps, ctx.run_id, "before")
    outcome = await ctx.run("flaky", flaky, ctx.deps, ctx.run_id, payload.get("failures", 2), backoff=0.1)
    await ctx.run("after", record, ctx.deps, ctx.run_id, "after")
    return outcome


async def remember_failure(failure: FailureContext) -> None:
    failure.deps.failures[failure.run_id] = failure.error


async def refuse(recorder: Recorder, run_id: str) -> None:
    recorder.hit(run_id, "refuse")
    raise NonRetryableError("the document is password-protected")


@workflow("non-retryable", on_failure=remember_failure)
async def non_retryable(ctx: WorkflowContext, payload: dict[str, Any]) -> None:
    await ctx.run("refuse", refuse, ctx.deps, ctx.run_id)
    await ctx.run("never", record, ctx.deps, ctx.run_id, "never")


async def always_fails(recorder: Recorder, run_id: str) -> None:
    recorder.hit(run_id, "always-fails")
    raise RuntimeError("upstream is down")


@workflow("exhausts-retries", on_failure=remember_failure)
async def exhausts_retries(ctx: WorkflowContext, payload: dict[str, Any]) -> None:
    await ctx.run("always-fails", always_fails, ctx.deps, ctx.run_id, retries=2, backoff=0.1)


@workflow("changes-under-run", on_failure=remember_failure)
async def changes_under_run(ctx: WorkflowContext, payload: dict[str, Any]) -> None:
    name = "extract" if ctx.deps.version == 1 else "extract-v2"
    await ctx.run(name, record, ctx.deps, ctx.run_id, name)
    await ctx.sleep("pause", payload.get("pause", 1.0))
    await ctx.run("finish", record, ctx.deps, ctx.run_id, "finish")


async def hang_first_time(recorder: Recorder, run_id: str) -> str:
    attempt = recorder.hit(run_id, "hang")
    if attempt == 1:
        await asyncio.sleep(60)
    return f"attempt {attempt}"


def burn_cpu(recorder: Recorder, run_id: str, seconds: float) -> int:
    recorder.hit(run_id, "burn")
    deadline, n = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        n += sum(i * i for i in range(1000))
    return n % 1000


@workflow("hang-then-burn")
async def hang_then_burn(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
    outcome = await ctx.run("hang", hang_first_time, ctx.deps, ctx.run_id, timeout=0.5, backoff=0.1)
    await ctx.run("burn", burn_cpu, ctx.deps, ctx.run_id, payload.get("burn", 2.0))
    return outcome


@workflow("sleeper")
async def sleeper(ctx: WorkflowContext, payload: dict[str, Any]) -> float:
    before = await ctx.run("before", lambda: time.time())
    await ctx.sleep("nap", payload["seconds"])
    after = await ctx.run("after", lambda: time.time())
    return after - before


@workflow("caller")
async def caller(ctx: WorkflowContext, payload: dict[str, Any]) -> dict[str, Any]:
    ok = await ctx.call("fetch", payload["ok_url"], method="POST", body={"q": 1}, headers={"X-Token": "abc"})
    broken = await ctx.call("fetch-broken", payload["broken_url"], method="GET")
    return {"ok": ok, "broken": broken}


@workflow("too-big")
async def too_big(ctx: WorkflowContext, payload: dict[str, Any]) -> None:
    await ctx.run("huge", lambda: "x" * 100_000)


ALL = [
    seven_steps,
    flaky_workflow,
    non_retryable,
    exhausts_retries,
    changes_under_run,
    hang_then_burn,
    sleeper,
    caller,
    too_big,
]
