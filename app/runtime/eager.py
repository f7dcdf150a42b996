"""Eager drives: a serving process drives the runs it starts or wakes at once (docs/runtime.md).

A run started, a child started, a parent woken by its last child, a waiter woken by `notify`,
a run resumed: each is written to the outbox in the transaction of its change, and
`Runtime.flush` hands the row here (`take`). A serving process drives the run in a task of its
own, exactly as a QStash delivery would (`Runtime.drive`: the lease, the doorbell, the same
answers), and publishes no message for it: the committed row is the safety net until the drive
is done.

- The drive ends as a delivery would be acknowledged (the run finished, handed back with its
  own message, waits on something that wakes it, or the drive rang the doorbell of the one that
  holds it): the row is deleted unsent.
- The database or QStash stops it (what a delivery answers 503 or 429), or it is cancelled at
  shutdown: it publishes a continuation under a fresh key (`hand_over`), then deletes the row;
  if QStash refuses, the row stays for the watchdog's sweep.
- The process dies: the watchdog's sweep, of any process, publishes the row once it is
  `OUTBOX_SWEEP_AFTER` old, and that message brings the run back once the lease lapses.

At most `EAGER_LIMIT` drives run at once; runs woken past that queue for a free one, up to
`EAGER_BACKLOG`, and past that are published (QStash may deliver them to another process).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import secrets
from collections.abc import Awaitable, Callable

from app.runtime.answers import RETRY, Answer, Outcome
from app.runtime.outbox import Outbox, RunRef, Wake

log = logging.getLogger(__name__)

EAGER_LIMIT = 16
EAGER_BACKLOG = 256
# At shutdown, drives get this long to finish before they are cancelled and handed over to
# QStash (as the runs still queued are at once).
EAGER_SHUTDOWN_GRACE_S = 10.0

Drive = Callable[[str, str], Awaitable[Answer]]  # (run_id, workflow) -> how a delivery would be answered
Publish = Callable[[RunRef, str], Awaitable[None]]  # publish a run's continuation with this key


class EagerDrives:
    def __init__(self, drive: Drive, publish: Publish, outbox: Outbox) -> None:
        self.drive = drive
        self.publish = publish
        self.outbox = outbox
        self._running: set[asyncio.Task[None]] | None = None  # None: not serving, never drives eagerly
        self._backlog: collections.deque[Wake] = collections.deque()  # woken runs waiting for a free drive

    def serve(self) -> None:
        """From now on, drive the runs this process starts or wakes (the app's lifespan calls it)."""
        if self._running is None:
            self._running = set()

    async def close(self) -> None:
        """Stop: hand the queued runs to QStash, let the drives under way finish (cancelled after a grace)."""
        running, self._running = self._running, None
        queued, self._backlog = list(self._backlog), collections.deque()
        await self.outbox.flush(queued)
        if not running:
            return
        _, late = await asyncio.wait(running, timeout=EAGER_SHUTDOWN_GRACE_S)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    def take(self, wake: Wake) -> bool:
        """Drive `wake`'s run now, or as soon as a drive is free; False when not serving or the queue is full."""
        if self._running is None:
            return False
        if len(self._running) < EAGER_LIMIT:
            self._start(wake)
        elif len(self._backlog) < EAGER_BACKLOG:
            self._backlog.append(wake)
        else:
            return False
        return True

    def _start(self, wake: Wake) -> None:
        assert self._running is not None
        task = asyncio.create_task(self._drive(wake), name=f"eager-{wake.ref.run_id}")
        self._running.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        """A drive ended: its place goes to the next queued run."""
        if self._running is None:  # closing: the queue was handed to QStash
            return
        self._running.discard(task)
        if self._backlog:
            self._start(self._backlog.popleft())

    async def _drive(self, wake: Wake) -> None:
        """Drive the run; then its row is done with, unless the drive could not go on (QStash takes over)."""
        ref, answer = wake.ref, RETRY
        try:
            answer = await self.drive(ref.run_id, ref.workflow)
        except Exception as exc:
            log.warning("eager drive of %s stopped by %s: %s", ref.run_id, type(exc).__name__, exc)
        finally:  # also when cancelled at shutdown
            if answer.outcome in (Outcome.RETRY, Outcome.BUSY):
                await self.hand_over(wake)
            else:
                self.outbox.discard([wake])

    async def hand_over(self, wake: Wake) -> None:
        """Publish the run's continuation, then drop its row (the row stays if QStash refuses).

        The key is fresh: after `OUTBOX_SWEEP_AFTER` the sweep may have sent the row's own
        message already, and its delivery rung this drive's doorbell and been acknowledged.
        """
        try:
            await self.publish(wake.ref, f"eager-{secrets.token_hex(4)}")
        except Exception as exc:
            log.warning("could not hand %s over to QStash (%s); the watchdog's sweep sends it", wake.ref.run_id, exc)
            return
        self.outbox.discard([wake])
