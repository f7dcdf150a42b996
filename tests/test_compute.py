"""`app.compute.run_cpu`: CPU-bound work in threads of its own, not in asyncio's default executor."""

from __future__ import annotations

import contextvars
import threading

import pytest

from app.compute import run_cpu

who = contextvars.ContextVar("who", default="nobody")


def _where(suffix: str) -> str:
    return f"{threading.current_thread().name}:{who.get()}:{suffix}"


async def test_work_runs_in_a_compute_thread_with_the_callers_context():
    who.set("step-7")
    result = await run_cpu(_where, "ok")
    assert result.startswith("compute")
    assert result.endswith(":step-7:ok")


async def test_an_exception_reaches_the_caller():
    def boom() -> None:
        raise ValueError("bad page")

    with pytest.raises(ValueError, match="bad page"):
        await run_cpu(boom)
