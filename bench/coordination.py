"""Coordination: fan-out (one parent invoking K children and waiting for all) and wait/notify latency.

Full path, as in runtime_overhead.py: embedded QStash, real HTTP, signatures, a fresh migrated
database, the service served by uvicorn in this process.

- fan-out: `--fanouts` parents each invoke `--children` children (one trivial step each) with
  `asyncio.gather(ctx.invoke(...))`; time from trigger to the parent's completion.
- wait/notify: `--runs` runs wait for an event; each is notified once it is idle (waiting,
  its lease given back: the delivery that started the wait has ended, as when a hospital or a
  patient answers); latency from the `runtime.notify` call to the start of the step after the
  wait (its attempt committed). Then `--runs` more, each notified as soon as its status shows
  it waiting, while the delivery that started the wait may still be publishing the wait's
  timeout message and holding the lease (the notify rings; that delivery drives the run on
  once it has published): `notify_early_*`.

Last line: JSON with fanout_s_p50, children_per_s, notify_latency_ms_p50, notify_latency_ms_p95,
notify_early_latency_ms_p50, notify_early_latency_ms_p95.

    .venv/bin/python bench/coordination.py --db sqlite --children 50 --runs 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.runtime.context import WorkflowContext  # noqa: E402
from app.runtime.models import RunStatus, WorkflowRun  # noqa: E402
from app.runtime.registry import workflow  # noqa: E402
from app.serving import serve_in_loop  # noqa: E402
from bench.support import FinishedRuns, bench_settings, fresh_database  # noqa: E402


async def identity(i: int) -> int:
    return i


@workflow("bench-child")
async def bench_child(ctx: WorkflowContext, payload: dict[str, Any]) -> int:
    return await ctx.run("work", identity, payload["i"])


@workflow("bench-parent")
async def bench_parent(ctx: WorkflowContext, payload: dict[str, Any]) -> int:
    results = await asyncio.gather(
        *(ctx.invoke(f"child-{i}", "bench-child", {"i": i}) for i in range(payload["children"]))
    )
    return sum(results)


@workflow("bench-waiter")
async def bench_waiter(ctx: WorkflowContext, payload: dict[str, Any]) -> float:
    await ctx.wait_for_event("go", payload["event"], timeout=600)
    return await ctx.run("woken-at", time.time)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--children", type=int, default=50, help="children per parent (default 50)")
    parser.add_argument("--fanouts", type=int, default=3, help="parents, one after the other (default 3)")
    parser.add_argument("--runs", type=int, default=100, help="wait/notify round trips (default 100)")
    return parser.parse_args(argv)


async def _wait_status(
    sessions: Any, run_id: str, statuses: set[str], *, idle: bool = False, timeout: float = 600
) -> WorkflowRun:
    """Poll until the run's status is one of `statuses` (and, if `idle`, nobody holds its lease)."""
    deadline = time.monotonic() + timeout
    while True:
        async with sessions() as session:
            run = await session.get(WorkflowRun, run_id)
        if run is not None and run.status in statuses and not (idle and run.lease_owner is not None):
            return run
        if time.monotonic() > deadline:
            raise SystemExit(f"run {run_id} stuck in {run.status if run else None}")
        await asyncio.sleep(0.005)


async def _fanout(runtime: Any, children: int, fanouts: int) -> list[float]:
    finished = runtime.hooks
    durations = []
    for _ in range(fanouts):
        started = time.perf_counter()
        run_id = await runtime.trigger("bench-parent", {"children": children})
        if await finished.wait(run_id) != RunStatus.COMPLETED:
            raise SystemExit(f"fan-out run {run_id} failed")
        durations.append(time.perf_counter() - started)
    return durations


async def _notify_latencies(runtime: Any, sessions: Any, runs: int, *, idle: bool) -> list[float]:
    latencies = []
    for i in range(runs):
        event_id = f"bench:{'idle' if idle else 'early'}:{i}"
        run_id = await runtime.trigger("bench-waiter", {"event": event_id})
        await _wait_status(sessions, run_id, {RunStatus.WAITING}, idle=idle)
        sent = time.time()
        await runtime.notify(event_id, {"i": i})
        if await runtime.hooks.wait(run_id) != RunStatus.COMPLETED:
            raise SystemExit(f"waiter run {run_id} failed")
        async with sessions() as session:
            run = await session.get(WorkflowRun, run_id)
        latencies.append((run.result - sent) * 1000)
    return latencies


def _percentiles(values: list[float]) -> list[float]:
    return statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else values * 100


async def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = _parse(argv)
    async with fresh_database(args.db, args.dsn) as database_url:

        def build(base_url: str) -> Any:
            from app.main import create_app

            settings = bench_settings(database_url, base_url, workflow_lease_wait_s=5)
            return create_app(settings, workflows=[bench_child, bench_parent, bench_waiter], deps=object())

        async with serve_in_loop(build) as (_, app):
            services = app.state.services
            services.runtime.hooks = FinishedRuns(services.runtime.hooks)  # runs finish without polling
            fanouts = await _fanout(services.runtime, args.children, args.fanouts)
            latencies = await _notify_latencies(services.runtime, services.sessions, args.runs, idle=True)
            early = await _notify_latencies(services.runtime, services.sessions, args.runs, idle=False)
    quantiles, early_quantiles = _percentiles(latencies), _percentiles(early)
    figures = {
        "db": args.db,
        "children": args.children,
        "fanouts": args.fanouts,
        "runs": args.runs,
        "fanout_s_p50": round(statistics.median(fanouts), 3),
        "children_per_s": round(args.children / statistics.median(fanouts), 2),
        "notify_latency_ms_p50": round(quantiles[49], 2),
        "notify_latency_ms_p95": round(quantiles[94], 2),
        "notify_early_latency_ms_p50": round(early_quantiles[49], 2),
        "notify_early_latency_ms_p95": round(early_quantiles[94], 2),
    }
    print(
        f"fan-out of {args.children} children on {args.db}: {figures['fanout_s_p50']} s (median of {args.fanouts}), "
        f"{figures['children_per_s']} children/s; wait/notify round trip p50 {figures['notify_latency_ms_p50']} ms, "
        f"p95 {figures['notify_latency_ms_p95']} ms over {args.runs} runs; notified as soon as waiting: "
        f"p50 {figures['notify_early_latency_ms_p50']} ms, p95 {figures['notify_early_latency_ms_p95']} ms"
    )
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    asyncio.run(main())
