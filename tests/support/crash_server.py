"""A real service process for crash tests: `python -m tests.support.crash_server PORT DATABASE_URL`.

It serves the app with the `crash-seven` workflow, whose steps append their name to the file
named in the payload (so executions survive the process being killed); on its first
execution step 4 writes a marker file and then hangs, waiting to be killed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import uvicorn

from app.main import create_app
from app.runtime.context import WorkflowContext
from app.runtime.registry import workflow
from tests.support.service import service_settings


async def append_step(log_path: str, step: str, hang_on_first: bool) -> str:
    path = Path(log_path)
    before = path.read_text().splitlines().count(step) if path.exists() else 0
    with path.open("a") as handle:
        handle.write(step + "\n")
    if hang_on_first and before == 0:
        Path(log_path + ".hanging").write_text(step)
        await asyncio.sleep(3600)
    return step


@workflow("crash-seven")
async def crash_seven(ctx: WorkflowContext, payload: dict[str, Any]) -> list[str]:
    done = []
    for i in range(1, 8):
        done.append(await ctx.run(f"step-{i}", append_step, payload["log"], f"step-{i}", i == 4))
    return done


def main() -> None:
    port, database_url = int(sys.argv[1]), sys.argv[2]
    base_url = f"http://127.0.0.1:{port}"
    settings = service_settings(
        database_url,
        base_url,
        devqstash_delivery_timeout_s=4.0,
        workflow_inline_budget_ms=0,
    )
    app = create_app(settings, workflows=[crash_seven])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
