"""Runtime overhead: N runs of a K-step workflow of trivial steps, through the real service.

On a fresh, migrated SQLite or Postgres database, with the service served by uvicorn in this
process and the embedded QStash delivering over real HTTP with signatures. How each run starts:

- `--start eager` (default, what an API request does): `runtime.trigger` in the serving process
  commits the run and drives it at once; its outbox row is the safety net, no message is sent
  unless the run hands back (inline off: one message per later step).
- `--start qstash`: the runs are triggered from a second handle that does not serve (as the CLI
  does), so each one is published to the embedded QStash and starts with a signed delivery over
  HTTP -> lease -> replay -> steps committed -> ...

Prints a summary and, as its last line, one JSON object:
  runs_per_s, steps_per_s, step_overhead_ms_p50, step_overhead_ms_p95, messages_per_run
(step overhead: for each step, the time from the previous step's commit, or the run's creation
for the first step, to its own commit; the steps themselves do nothing).

    .venv/bin/python bench/runtime_overhead.py --db sqlite --runs 1000 --steps 7 --inline on
    .venv/bin/python bench/runtime_overhead.py --db postgres --dsn postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/runtime_overhead.py --db postgres --compare dbos     # and the peer, same sitting
    .venv/bin/python bench/runtime_overhead.py --db postgres --start qstash     # every run through QStash
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select  # noqa: E402

from app.devqstash.models import EventState, QStashEvent  # noqa: E402
from app.main import build_services, create_app  # noqa: E402
from app.runtime.context import WorkflowContext  # noqa: E402
from app.runtime.models import WorkflowRun, WorkflowStep  # noqa: E402
from app.runtime.registry import workflow  # noqa: E402
from app.serving import serve_in_loop  # noqa: E402
from bench.support import FinishedRuns, bench_settings, fresh_database  # noqa: E402


async def nothing(i: int) -> int:
    return i


@workflow("bench-steps")
async def bench_steps(ctx: WorkflowContext, payload: dict[str, Any]) -> int:
    total = 0
    for i in range(payload["steps"]):
        total += await ctx.run(f"step-{i}", nothing, i)
    return total


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--dsn",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="Postgres server for --db postgres (a scratch database is created on it)",
    )
    parser.add_argument("--runs", type=int, default=1000, help="number of runs (default 1000)")
    parser.add_argument("--steps", type=int, default=7, help="steps per run (default 7)")
    parser.add_argument(
        "--inline",
        choices=["on", "off"],
        default="on",
        help="inline continuation (on: budget 10 s; off: one message per step)",
    )
    parser.add_argument("--concurrency", type=int, default=16, help="runs in flight at once (default 16)")
    parser.add_argument(
        "--start",
        choices=["eager", "qstash"],
        default="eager",
        help="eager: trigger in the serving process (driven at once); qstash: trigger from a handle "
        "that does not serve, so each run starts with a QStash message and its delivery (default eager)",
    )
    parser.add_argument(
        "--compare",
        choices=["dbos"],
        help="then run the peer (bench/peer_dbos.py) on the same database with the same sizes, and print the ratio",
    )
    parser.add_argument(
        "--peer-python",
        default=os.environ.get("PEER_PYTHON", "/work/dbos-venv/bin/python"),
        help="the interpreter that has the peer installed (default $PEER_PYTHON or /work/dbos-venv/bin/python)",
    )
    return parser.parse_args(argv)


def _peer(args: argparse.Namespace) -> dict[str, Any]:
    """Run bench/peer_dbos.py in its own virtualenv with our sizes; its last line of JSON."""
    script = Path(__file__).with_name("peer_dbos.py")
    sizes = ["--runs", str(args.runs), "--steps", str(args.steps), "--concurrency", str(args.concurrency)]
    command = [args.peer_python, str(script), "--db", args.db, "--dsn", args.dsn, *sizes]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        raise SystemExit(f"the peer did not run ({exc}); install it: see bench/README.md\n{detail[-2000:]}") from exc
    return json.loads(done.stdout.strip().splitlines()[-1])


async def _drive(runtime: Any, trigger: Any, runs: int, steps: int, concurrency: int) -> float:
    """Keep `concurrency` runs in flight, started with `trigger`, until `runs` completed in `runtime`."""
    finished = runtime.hooks = FinishedRuns(runtime.hooks)
    started = time.perf_counter()
    triggered = 0
    while True:
        finished.changed.clear()  # before reading the counts: a run finishing after this sets it again
        if finished.failed:
            raise SystemExit(f"{finished.failed} runs failed")
        if finished.completed >= runs:
            break
        while triggered < runs and triggered - finished.completed < concurrency:
            await trigger("bench-steps", {"steps": steps})
            triggered += 1
        try:
            await asyncio.wait_for(finished.changed.wait(), timeout=60)
        except TimeoutError:
            raise SystemExit(f"no run finished for 60 s ({finished.completed} of {runs} completed)") from None
    return time.perf_counter() - started


async def _overheads(sessions: Any) -> list[float]:
    async with sessions() as session:
        runs = {r.id: r.created_at for r in await session.scalars(select(WorkflowRun))}
        rows = await session.execute(
            select(WorkflowStep.run_id, WorkflowStep.finished_at).order_by(WorkflowStep.run_id, WorkflowStep.position)
        )
    overheads: list[float] = []
    previous: dict[str, Any] = {}
    for run_id, finished in rows:
        before = previous.get(run_id, runs[run_id])
        overheads.append((finished - before).total_seconds() * 1000)
        previous[run_id] = finished
    return overheads


async def _run_latencies(sessions: Any) -> list[float]:
    """Per run, the time from its creation (the trigger) to its completion, in ms."""
    async with sessions() as session:
        rows = await session.execute(select(WorkflowRun.created_at, WorkflowRun.finished_at))
    return [(finished - created).total_seconds() * 1000 for created, finished in rows]


async def _messages(sessions: Any) -> int:
    async with sessions() as session:
        return await session.scalar(
            select(func.count())
            .select_from(QStashEvent)
            .where(QStashEvent.state == EventState.CREATED, QStashEvent.url.like("%/workflows/bench-steps"))
        )


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = _parse(argv)
    async with fresh_database(args.db, args.dsn) as database_url:

        def build(base_url: str) -> Any:
            budget = 10_000 if args.inline == "on" else 0
            settings = bench_settings(database_url, base_url, workflow_inline_budget_ms=budget)
            return create_app(settings, workflows=[bench_steps], deps=object())

        async with serve_in_loop(build) as (base_url, app):
            services = app.state.services
            starter = services
            if args.start == "qstash":  # a handle that builds the services and never serves
                starter = build_services(bench_settings(database_url, base_url), [bench_steps], deps=object())
            try:
                trigger = starter.runtime.trigger
                elapsed = await _drive(services.runtime, trigger, args.runs, args.steps, args.concurrency)
            finally:
                if starter is not services:
                    await starter.http.aclose()
                    await starter.engine.dispose()
            overheads = await _overheads(services.sessions)
            latencies = await _run_latencies(services.sessions)
            messages = await _messages(services.sessions)
    figures = {
        "db": args.db,
        "runs": args.runs,
        "steps": args.steps,
        "inline": args.inline,
        "start": args.start,
        "concurrency": args.concurrency,
        "seconds": round(elapsed, 3),
        "runs_per_s": round(args.runs / elapsed, 2),
        "steps_per_s": round(args.runs * args.steps / elapsed, 2),
        "step_overhead_ms_p50": round(_percentile(overheads, 50), 3),
        "step_overhead_ms_p95": round(_percentile(overheads, 95), 3),
        "run_latency_ms_p50": round(_percentile(latencies, 50), 3),
        "run_latency_ms_p95": round(_percentile(latencies, 95), 3),
        "messages_per_run": round(messages / args.runs, 3),
    }
    print(
        f"{args.runs} runs x {args.steps} steps on {args.db}, inline {args.inline}, start {args.start}: "
        f"{figures['runs_per_s']} runs/s, {figures['steps_per_s']} steps/s, step overhead "
        f"p50 {figures['step_overhead_ms_p50']} ms / p95 {figures['step_overhead_ms_p95']} ms, "
        f"{figures['messages_per_run']} QStash messages per run"
    )
    if args.compare:
        peer = _peer(args)
        figures["peer"] = peer
        figures["steps_per_s_vs_peer"] = round(figures["steps_per_s"] / peer["steps_per_s"], 2)
        print(
            f"{peer['peer']} on {args.db}: {peer['steps_per_s']} steps/s; "
            f"ours / peer = {figures['steps_per_s_vs_peer']}"
        )
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    asyncio.run(main())
