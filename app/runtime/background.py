"""`BackgroundLoop`: a named asyncio task that runs one round of work again and again.

Between rounds it pauses until it is woken (`wake()`), or for `pause_s()` seconds, whichever
comes first; `pause_s` is asked again before every pause, so a loop that knows when its next
piece of work is due can sleep exactly that long. A round that raises is logged and the
loop carries on after the usual pause: a background loop never dies of one bad round.

`stop()` is graceful: it sets `stopping`, interrupts the pause, and waits for the round in
progress to finish (a round checks `stopping` to cut long work short). `stopping` stays set
until the next `start()`, so work the loop spawned can still see that the loop is going down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class BackgroundLoop:
    """Run `work()` in a task named `name` until `stop()`, pausing `pause_s()` between rounds."""

    def __init__(
        self,
        name: str,
        work: Callable[[], Awaitable[object]],
        *,
        pause_s: Callable[[], float],
        logger: logging.Logger = log,
    ) -> None:
        self.name = name
        self._work = work
        self._pause_s = pause_s
        self._logger = logger
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.stopping = False

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        """Start the task (nothing happens if it runs already); the first round starts at once."""
        if self._task is None:
            self.stopping = False
            self._task = asyncio.create_task(self._run(), name=self.name)

    def wake(self) -> None:
        """End the current pause now, or skip the next one if a round is in progress."""
        self._wake.set()

    async def stop(self) -> None:
        """Let the round in progress finish, then end the task."""
        if self._task is None:
            return
        self.stopping = True
        self._wake.set()
        try:
            await self._task
        finally:
            self._task = None

    async def _run(self) -> None:
        while not self.stopping:
            try:
                await self._work()
            except Exception:
                self._logger.exception("%s: round failed; trying again after the pause", self.name)
            await self._pause()

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(0.0, self._pause_s()))
        self._wake.clear()
