"""Faults: N runs under a random mix of faults, with the settings `make run` ships.

The service runs as a real process (`tests.support.process_server`, shipped settings); the
runs are `paced-five` (five steps, a durable one-second sleep between them, each step appending
a line to a log file). While they are in flight the benchmark injects, at random moments:
- `kill`: SIGKILL of the service process, restarted at once;
- `publish`: the QStash publish endpoint answers 500 and 429 to the next publishes;
- `terminate` (Postgres only): `pg_terminate_backend` of the service's connections for 2 s.

Prints a summary and, as its last line, one JSON object: runs, faults injected, runs_lost (not
completed in the end), steps_executed_twice (executions beyond the recorded attempts: a
committed step run again), runs_wrongly_failed, and recovery_s_p50/p95/max: for each run in
flight when a fault ended, the time from the end of the fault to its next step's commit.

    .venv/bin/python bench/faults.py --db sqlite --runs 20
    .venv/bin/python bench/faults.py --db postgres --dsn postgresql://postgres@127.0.0.1:5432/test --runs 40
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg  # noqa: E402
import httpx  # noqa: E402
from sqlalchemy import select  # noqa: E402

from app.db import create_engine, session_factory  # noqa: E402
from app.main import build_services  # noqa: E402
from app.runtime.models import TERMINAL_RUN_STATUSES, WorkflowRun, WorkflowStep  # noqa: E402
from bench.support import bench_settings, fresh_database  # noqa: E402
from tests.support.process_server import WORKFLOWS  # noqa: E402
from tests.support.processes import free_port, start_server, stop, wait_healthy  # noqa: E402


@dataclass
class Fault:
    kind: str
    ended_at: datetime
    in_flight: list[str] = field(default_factory=list)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test", help="Postgres server for --db postgres")
    parser.add_argument("--runs", type=int, default=20, help="number of runs (default 20)")
    parser.add_argument("--faults", type=int, default=6, help="faults to inject, one every --every seconds (default 6)")
    parser.add_argument("--every", type=float, default=4.0, help="seconds between faults (default 4)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=300.0, help="give up on unfinished runs after this (default 300 s)")
    return parser.parse_args(argv)


class Service:
    """The service process, restartable; publishes can be made to fail through its fault edge."""

    def __init__(self, database_url: str, directory: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        self.log = directory / "server.log"
        self.env = {"CURAWAY_TEST_SHIPPED": "1", "CURAWAY_TEST_FAULTS": "1",
                    "CURAWAY_TEST_SETTINGS": json.dumps({"storage_dir": str(directory / "storage")})}
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.process = start_server(self.port, self.database_url, self.log, env=self.env)
        await wait_healthy(self.base_url, self.process, self.log)

    async def kill_and_restart(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        await self.start()

    async def fail_publishes(self, count: int) -> None:
        async with httpx.AsyncClient() as client:
            (await client.post(f"{self.base_url}/_faults/publish-failures/{count}")).raise_for_status()

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)


async def _terminate_for(database_url: str, seconds: float) -> None:
    admin, database = database_url.replace("postgresql+asyncpg://", "postgresql://").rsplit("/", 1)
    conn = await asyncpg.connect(f"{admin}/postgres")
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                database,
            )
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


async def _unfinished(sessions: Any, run_ids: list[str]) -> list[str]:
    async with sessions() as session:
        rows = await session.execute(select(WorkflowRun.id, WorkflowRun.status).where(WorkflowRun.id.in_(run_ids)))
        return [run_id for run_id, status in rows if status not in TERMINAL_RUN_STATUSES]


async def _inject(kind: str, service: Service, database_url: str) -> None:
    if kind == "kill":
        await service.kill_and_restart()
    elif kind == "publish":
        await service.fail_publishes(8)
        await asyncio.sleep(2)
        await service.fail_publishes(0)
    else:
        await _terminate_for(database_url, 2.0)


async def _recovery(sessions: Any, faults: list[Fault]) -> list[float]:
    async with sessions() as session:
        rows = list(await session.execute(select(WorkflowStep.run_id, WorkflowStep.finished_at)))
    finished: dict[str, list[datetime]] = {}
    for run_id, at in rows:
        if at is not None:
            finished.setdefault(run_id, []).append(at)
    delays = []
    for fault in faults:
        for run_id in fault.in_flight:
            later = [at for at in finished.get(run_id, []) if at >= fault.ended_at]
            if later:
                delays.append((min(later) - fault.ended_at).total_seconds())
    return delays


async def _outcome(sessions: Any, run_ids: list[str], log: Path) -> dict[str, int]:
    async with sessions() as session:
        runs = {r.id: r.status for r in await session.scalars(select(WorkflowRun).where(WorkflowRun.id.in_(run_ids)))}
        attempts = {(s.run_id, s.name): s.attempts
                    for s in await session.scalars(select(WorkflowStep).where(WorkflowStep.run_id.in_(run_ids)))}
    executions = Counter(tuple(line.split(" ", 1)) for line in log.read_text().splitlines()) if log.exists() else Counter()
    twice = sum(max(0, count - attempts.get(key, 0)) for key, count in executions.items())
    return {
        "runs_lost": sum(1 for status in runs.values() if status not in TERMINAL_RUN_STATUSES),
        "runs_wrongly_failed": sum(1 for status in runs.values() if status == "failed"),
        "steps_executed_twice": twice,
    }


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    kinds = ["kill", "publish"] + (["terminate"] if args.db == "postgres" else [])
    async with fresh_database(args.db, args.dsn) as database_url:
        with tempfile.TemporaryDirectory(prefix="curaway-faults-") as tmp:
            directory = Path(tmp)
            steps_log = directory / "steps.log"
            service = Service(database_url, directory)
            await service.start()
            client = build_services(bench_settings(database_url, service.base_url), WORKFLOWS)
            engine = create_engine(database_url)
            sessions = session_factory(engine)
            faults: list[Fault] = []
            try:
                run_ids = [await client.runtime.trigger("paced-five", {"log": str(steps_log)}) for _ in range(args.runs)]
                for _ in range(args.faults):
                    await asyncio.sleep(rng.uniform(0.5, args.every))
                    in_flight = await _unfinished(sessions, run_ids)
                    if not in_flight:
                        break
                    kind = rng.choice(kinds)
                    await _inject(kind, service, database_url)
                    faults.append(Fault(kind, datetime.now(UTC), in_flight))
                    print(f"{kind}: {len(in_flight)} runs in flight", file=sys.stderr)
                deadline = time.monotonic() + args.timeout
                while await _unfinished(sessions, run_ids) and time.monotonic() < deadline:
                    await asyncio.sleep(0.25)
                outcome = await _outcome(sessions, run_ids, steps_log)
                delays = sorted(await _recovery(sessions, faults))
            finally:
                service.stop()
                await client.http.aclose()
                await client.engine.dispose()
                await engine.dispose()
    return {
        "db": args.db,
        "runs": args.runs,
        "faults": dict(Counter(f.kind for f in faults)),
        **outcome,
        "recovery_s_p50": round(statistics.median(delays), 2) if delays else None,
        "recovery_s_p95": round(delays[int(0.95 * (len(delays) - 1))], 2) if delays else None,
        "recovery_s_max": round(max(delays), 2) if delays else None,
    }


def main(argv: list[str] | None = None) -> None:
    figures = asyncio.run(_main(_parse(argv)))
    print(f"{figures['runs']} runs on {figures['db']} under {figures['faults']}: {figures['runs_lost']} lost, "
          f"{figures['steps_executed_twice']} step executions beyond their attempts, "
          f"{figures['runs_wrongly_failed']} wrongly failed; recovery p50 {figures['recovery_s_p50']} s, "
          f"max {figures['recovery_s_max']} s")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
