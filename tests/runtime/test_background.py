"""`BackgroundLoop`: rounds, wake-ups, surviving a failing round, and a graceful stop."""

from __future__ import annotations

import asyncio

from app.runtime.background import BackgroundLoop

LONG_PAUSE_S = 3600.0  # rounds after the first happen only when woken


async def wait_until(condition, timeout: float = 10.0) -> None:  # noqa: ANN001
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_the_first_round_starts_at_once_and_wake_ends_the_pause():
    rounds: list[int] = []

    async def work() -> None:
        rounds.append(len(rounds))

    loop = BackgroundLoop("test-loop", work, pause_s=lambda: LONG_PAUSE_S)
    loop.start()
    try:
        await wait_until(lambda: len(rounds) == 1)
        loop.wake()
        await wait_until(lambda: len(rounds) == 2)
    finally:
        await loop.stop()
    assert not loop.running and loop.stopping


async def test_a_failing_round_is_logged_and_the_loop_carries_on(caplog):
    calls: list[str] = []

    async def work() -> None:
        calls.append("round")
        if len(calls) == 1:
            raise RuntimeError("boom")

    loop = BackgroundLoop("flaky-loop", work, pause_s=lambda: 0.0)
    loop.start()
    try:
        await wait_until(lambda: len(calls) >= 2)
    finally:
        await loop.stop()
    assert any("flaky-loop: round failed" in record.getMessage() for record in caplog.records)


async def test_stop_lets_the_round_in_progress_finish_and_the_task_is_named():
    entered, release, finished = asyncio.Event(), asyncio.Event(), asyncio.Event()
    seen_stopping: list[bool] = []

    async def work() -> None:
        entered.set()
        await release.wait()
        seen_stopping.append(loop.stopping)
        finished.set()

    loop = BackgroundLoop("named-loop", work, pause_s=lambda: LONG_PAUSE_S)
    loop.start()
    await entered.wait()
    assert "named-loop" in {task.get_name() for task in asyncio.all_tasks()}
    stopping = asyncio.create_task(loop.stop())
    await wait_until(lambda: loop.stopping)
    assert not stopping.done()
    release.set()
    await stopping
    assert finished.is_set() and seen_stopping == [True]
    assert not loop.running
    loop.start()  # a stopped loop can be started again, and is no longer stopping
    await wait_until(lambda: len(seen_stopping) == 2)
    await loop.stop()
    assert seen_stopping == [True, False]
