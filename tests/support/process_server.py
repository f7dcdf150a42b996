"""A real service process for crash and multi-process tests.

    python -m tests.support.process_server PORT DATABASE_URL [PUBLIC_BASE_URL]

Environment (for the test that starts it): `CURAWAY_TEST_SETTINGS` (JSON of settings
overrides), `CURAWAY_TEST_WORKFLOWS=pipelines` (serve the real pipelines instead) and
`CURAWAY_TEST_SHIPPED=1` (the default settings `make run` ships; of the overrides only the
`*_dir` paths and product settings such as `webhook_*` apply) and `CURAWAY_TEST_FAULTS=1` (publishes can be made to fail:
`tests.support.faults.FailingPublishes`) and `CURAWAY_TEST_KILL_AT=<boundary>:<n>` (the process
SIGKILLs itself at that boundary: `tests.support.faults.KillAt`).

It serves the app with two workflows whose steps append `<run_id> <step>` lines to the file
named in the payload (appends of one short line are atomic, so several processes can share
it, and executions survive the process being killed):
- `crash-seven`: 7 steps; on its first execution step 4 writes a marker file and hangs.
- `five-steps`: 5 steps; with `"kill_in": "step-<i>"` in the payload, step i's first execution
  SIGKILLs the process after writing its line.
- `paced-five`: 5 steps with a durable one-second sleep between them.
- `stall-three`: 5 steps returning `<step> by <pid>`; step 3's first execution writes
  `<log>.stalling` and takes 5 s, long enough for the test to freeze the process.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import uvicorn

from app.config import Settings
from app.main import create_app
from app.runtime.context import WorkflowContext
from app.runtime.registry import workflow
from tests.support.faults import FailingPublishes, KillAt
from tests.support.service import service_settings


async def append_step(
    log_path: str, run_id: str, step: str, hang_on_first: bool = False, kill_on_first: bool = False
) -> str:
    path = Path(log_path)
    line = f"{run_id} {step}"
    before = path.read_text().splitlines().count(line) if path.exists() else 0
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)
    if kill_on_first and before == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    if hang_on_first and before == 0:
        Path(log_path + ".hanging").write_text(step)
        await asyncio.sleep(3600)
    return step


@workflow("crash-seven")
async def crash_seven(ctx: WorkflowContext, payload: dict[str, Any]) -> list[str]:
    done = []
    for i in range(1, 8):
        done.append(await ctx.run(f"step-{i}", append_step, payload["log"], ctx.run_id, f"step-{i}", i == 4))
    return done


@workflow("five-steps")
async def five_steps(ctx: WorkflowContext, payload: dict[str, Any]) -> list[str]:
    kill_in = payload.get("kill_in")
    return [
        await ctx.run(f"step-{i}", append_step, payload["log"], ctx.run_id, f"step-{i}", False, kill_in == f"step-{i}")
        for i in range(1, 6)
    ]


@workflow("paced-five")
async def paced_five(ctx: WorkflowContext, payload: dict[str, Any]) -> list[str]:
    """Five steps a second apart (durable sleeps between them): runs stay in flight for a while."""
    done = []
    for i in range(1, 6):
        if i > 1:
            await ctx.sleep(f"pause-{i}", payload.get("pause", 1.0))
        done.append(await ctx.run(f"step-{i}", append_step, payload["log"], ctx.run_id, f"step-{i}"))
    return done


async def stalling_step(log_path: str, run_id: str, step: str, stall_on_first: bool) -> str:
    """Append the line; on the first execution, write `<log>.stalling` and take 5 s to finish."""
    path = Path(log_path)
    line = f"{run_id} {step}"
    before = path.read_text().splitlines().count(line) if path.exists() else 0
    await append_step(log_path, run_id, step)
    if stall_on_first and before == 0:
        Path(log_path + ".stalling").write_text(str(os.getpid()))
        await asyncio.sleep(5)  # the test stops the process (SIGSTOP) in here
    return f"{step} by {os.getpid()}"


@workflow("stall-three")
async def stall_three(ctx: WorkflowContext, payload: dict[str, Any]) -> list[str]:
    return [
        await ctx.run(f"step-{i}", stalling_step, payload["log"], ctx.run_id, f"step-{i}", i == 3) for i in range(1, 6)
    ]


WORKFLOWS = [crash_seven, five_steps, paced_five, stall_three]


def _kept(key: str) -> bool:
    """Overrides a shipped-settings server keeps: paths, and product settings of a scenario."""
    return key.endswith("_dir") or key.startswith(("webhook_", "circuit_")) or key == "embedding_warm_up"


def main() -> None:
    port, database_url = int(sys.argv[1]), sys.argv[2]
    public_url = sys.argv[3] if len(sys.argv) > 3 else f"http://127.0.0.1:{port}"
    # Shipped lease and claim settings: a killed process's runs come back through the embedded
    # server's claim take-over and the watchdog, as they would for a user.
    overrides = {"workflow_inline_budget_ms": 0}
    overrides.update(json.loads(os.environ.get("CURAWAY_TEST_SETTINGS", "{}")))
    settings = service_settings(database_url, public_url, **overrides)
    if os.environ.get("CURAWAY_TEST_SHIPPED") == "1":  # the settings `make run` ships, but for paths
        # Of the overrides, paths and product settings (webhook_*, circuit_*: a scenario's hospitals)
        paths = {k: v for k, v in json.loads(os.environ.get("CURAWAY_TEST_SETTINGS", "{}")).items() if _kept(k)}
        settings = Settings(_env_file=None, database_url=database_url, public_base_url=public_url, **paths)  # type: ignore[call-arg]
    workflows = None if os.environ.get("CURAWAY_TEST_WORKFLOWS") == "pipelines" else WORKFLOWS
    app = create_app(settings, workflows=workflows)
    if os.environ.get("CURAWAY_TEST_FAULTS") == "1":  # publishes can be made to fail (bench/faults.py)
        app = FailingPublishes(app)
    if kill_at := os.environ.get("CURAWAY_TEST_KILL_AT"):
        app = KillAt(app, kill_at)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
