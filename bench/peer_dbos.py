"""Peer figure: DBOS Transact running the same K-step workflow of trivial steps on the same database.

Not part of the project's dependencies: run it with a separate virtualenv holding `dbos`
(`python3 -m venv /work/dbos-venv && /work/dbos-venv/bin/pip install dbos==3.4.0`):

    /work/dbos-venv/bin/python bench/peer_dbos.py --db postgres --dsn postgresql://postgres@127.0.0.1:5432/test
    /work/dbos-venv/bin/python bench/peer_dbos.py --db sqlite --runs 300

A scratch database is created on the Postgres server (and dropped afterwards), or a fresh SQLite
file is used. N runs of the workflow, at most `--concurrency` in flight, each started with
`DBOS.start_workflow_async` in this process (DBOS has no message broker on its path). Prints as
its last line one JSON object in `runtime_overhead.py`'s shape: runs_per_s, steps_per_s,
step_overhead_ms_p50/p95 (per step: time from the previous step's end, or the start for the
first step, to its own end; measured inside the step function, so it slightly favours DBOS).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from dbos import DBOS, DBOSConfig

STAMPS: dict[str, list[float]] = {}


@DBOS.step()
async def nothing(run: str, i: int) -> int:
    STAMPS[run].append(time.perf_counter())
    return i


@DBOS.workflow()
async def bench_steps(run: str, steps: int) -> int:
    total = 0
    for i in range(steps):
        total += await nothing(run, i)
    return total


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=7)
    parser.add_argument("--concurrency", type=int, default=16)
    return parser.parse_args()


async def _drive(runs: int, steps: int, concurrency: int) -> tuple[float, list[float]]:
    gate = asyncio.Semaphore(concurrency)
    overheads: list[float] = []

    async def one(n: int) -> None:
        async with gate:
            run = f"r{n}"
            STAMPS[run] = []
            began = time.perf_counter()
            handle = await DBOS.start_workflow_async(bench_steps, run, steps)
            await handle.get_result()
            previous = began
            for stamp in STAMPS[run]:
                overheads.append((stamp - previous) * 1000)
                previous = stamp

    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(runs)))
    return time.perf_counter() - started, overheads


def main() -> None:
    args = _parse()
    scratch = f"peer_dbos_{secrets.token_hex(4)}"
    admin = None
    if args.db == "postgres":
        admin = sa.create_engine(
            args.dsn.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {scratch}"))
        url = args.dsn.rsplit("/", 1)[0] + f"/{scratch}"
    else:
        url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'dbos.sqlite'}"
    config: DBOSConfig = {"name": "peer-bench", "system_database_url": url, "log_level": "WARNING"}
    DBOS(config=config)
    DBOS.launch()
    try:
        asyncio.run(_drive(10, args.steps, args.concurrency))  # warm-up, not counted
        seconds, overheads = asyncio.run(_drive(args.runs, args.steps, args.concurrency))
    finally:
        DBOS.destroy()
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {scratch} WITH (FORCE)"))
    overheads.sort()
    figures: dict[str, Any] = {
        "peer": f"dbos {importlib.metadata.version('dbos')}",
        "db": args.db,
        "runs": args.runs,
        "steps": args.steps,
        "concurrency": args.concurrency,
        "seconds": round(seconds, 3),
        "runs_per_s": round(args.runs / seconds, 2),
        "steps_per_s": round(args.runs * args.steps / seconds, 2),
        "step_overhead_ms_p50": round(statistics.median(overheads), 3),
        "step_overhead_ms_p95": round(overheads[int(len(overheads) * 0.95)], 3),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
