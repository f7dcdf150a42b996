"""Live progress of a case's documents: one feed per process, fanned out to SSE clients.

The `events` table is the source of truth; progress events are its `document.*`, `consent.*` and
`forwarding.*` rows and the patient's notifications (`notification.*`, written by
`app.notifications.service`). One `ProgressFeed` task per process walks the new rows (an indexed
range scan on the ID) and hands each to the queues of the clients watching its case, so 500
clients cost one query per walk, not 500. Events written by any process are seen, because the
feed reads the shared table.

**When it walks.** At once when an event is committed: in this process through
`app.runtime.events.on_events_committed` (a commit hook), from other processes on Postgres through
`LISTEN curaway_progress` (migration 0011's trigger NOTIFYs at commit for progress rows); and
every `poll_s` as a safety net (SQLite across processes, a lost listener connection).

**In ID order, without waiting needlessly.** A client resumes with `Last-Event-ID`, so the feed
must never hand out a row after a larger ID: a row that appears later below it would be missed
on a reconnect. On Postgres, IDs are taken at insert time but become visible at commit, so a
smaller ID can appear after a larger one, and only where the IDs have a gap. The walk therefore
looks at every event's ID (progress or not) and stops at a gap, checking again every
`GAP_RECHECK_S` until the straggler commits, or takes the gap for a rolled back insert
`settle_s` after it first stopped there (at once if the row after the gap is older than that;
every event-writing transaction here is short and does no outside I/O). Without a gap nothing
waits. SQLite serialises writers, so there `settle_s` is 0.

Each row is encoded once (`ProgressEvent`: its JSON and its server-sent-event bytes) and the same
object goes to every stream of its case, so a client costs one write, not an encoding of its own.

A client first subscribes, then reads its backlog (after its `Last-Event-ID`, up to where the
feed has walked), then follows the feed, skipping IDs it has already sent: nothing is missed and
nothing is sent twice across a reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Request
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sse_starlette import ServerSentEvent

from app.db import utcnow
from app.runtime.events import on_events_committed
from app.runtime.models import Event

log = logging.getLogger(__name__)

# What the patient sees on a case's stream: documents' progress, notifications, consents, forwardings.
PROGRESS_PREFIXES = ("document.", "notification.", "consent.", "forwarding.")
NOTIFY_CHANNEL = "curaway_progress"  # migration 0011: NOTIFYed at the commit of a progress row
BATCH = 500
GAP_RECHECK_S = 0.01  # how soon a walk stopped at a gap looks again
LISTEN_RETRY_S = 1.0


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """One progress row as its case's streams send it, encoded once and shared by all of them."""

    id: int
    data: dict[str, Any]
    sse: bytes  # the server-sent event: `id:` (the event ID), `event:` (its type), `data:` (the JSON)

    @classmethod
    def of(cls, row: Event) -> ProgressEvent:
        data = {
            "id": row.id,
            "type": row.type,
            "case_id": row.case_id,
            "document_id": row.document_id,
            "workflow_id": row.workflow_id,
            "payload": row.payload,
            "created_at": row.created_at.isoformat(),
        }
        return cls(row.id, data, ServerSentEvent(data=json.dumps(data), event=row.type, id=str(row.id)).encode())


class ProgressFeed:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        poll_s: float,
        settle_s: float,
        listen_dsn: str | None = None,
    ) -> None:
        self._sessions = sessions
        self._poll_s = poll_s
        self._settle = timedelta(seconds=settle_s)
        self._listen_dsn = listen_dsn  # Postgres: LISTEN for commits of other processes
        self._subscribers: defaultdict[str, set[asyncio.Queue[ProgressEvent]]] = defaultdict(set)
        self._last_id = 0  # every event up to here has been walked (and its progress dispatched)
        self._gap: tuple[int, float] | None = None  # (walked up to, first seen waiting there)
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def clients(self) -> int:
        """Streams subscribed now (the `curaway_sse_clients` metric)."""
        return sum(len(queues) for queues in self._subscribers.values())

    @property
    def waiting_at_gap(self) -> bool:
        """The last walk stopped at a young gap in the event IDs (a straggler may still commit)."""
        return self._gap is not None

    async def start(self) -> None:
        async with self._sessions() as session:
            self._last_id = await session.scalar(select(Event.id).order_by(Event.id.desc()).limit(1)) or 0
        self._loop = asyncio.get_running_loop()
        on_events_committed(self.wake)
        self._tasks = [asyncio.create_task(self._run(), name="progress-feed")]
        if self._listen_dsn:
            self._tasks.append(asyncio.create_task(self._listen(self._listen_dsn), name="progress-listen"))

    async def stop(self) -> None:
        on_events_committed(self.wake, remove=True)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def wake(self) -> None:
        """Walk now: events were committed (callable from any thread)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def _run(self) -> None:
        delay = self._poll_s
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self._wake.clear()
            try:
                at_gap = await self._walk()
            except Exception:
                log.exception("progress feed walk failed")
                at_gap = False
            delay = min(GAP_RECHECK_S, self._poll_s) if at_gap else self._poll_s

    async def _listen(self, dsn: str) -> None:
        """Wake the walk on every NOTIFY of migration 0011's trigger; reconnect when dropped."""
        while True:
            try:
                await self._listen_until_closed(dsn)
            except Exception as exc:
                log.warning("progress feed: LISTEN %s failed (%s); polling until it is back", NOTIFY_CHANNEL, exc)
            await asyncio.sleep(LISTEN_RETRY_S)

    async def _listen_until_closed(self, dsn: str) -> None:
        closed = asyncio.Event()
        connection = await asyncpg.connect(dsn)
        try:
            connection.add_termination_listener(lambda _connection: closed.set())
            await connection.add_listener(NOTIFY_CHANNEL, lambda *_args: self._wake.set())
            self._wake.set()  # catch up on what was committed while nobody listened
            await closed.wait()
        finally:
            await connection.close()

    async def _walk(self) -> bool:
        """Dispatch the progress rows after `_last_id`, in ID order; True if it stopped at a gap."""
        while True:
            async with self._sessions() as session:
                heads = (
                    await session.execute(
                        select(Event.id, Event.created_at)
                        .where(Event.id > self._last_id)
                        .order_by(Event.id)
                        .limit(BATCH)
                    )
                ).all()
                reached, at_gap = self._last_id, False
                for event_id, created_at in heads:
                    if event_id != reached + 1 and self._young_gap(reached, created_at):
                        at_gap = True  # a smaller ID may still commit: wait for it a little
                        break
                    reached = event_id
                rows = []
                if reached > self._last_id:
                    query = select(Event).where(Event.id > self._last_id, Event.id <= reached, _shown())
                    rows = list(await session.scalars(query.order_by(Event.id)))
            for row in rows:  # no await from here until _last_id moves: streams read it
                if queues := self._subscribers.get(row.case_id or ""):
                    event = ProgressEvent.of(row)
                    for queue in queues:
                        queue.put_nowait(event)
            self._last_id = reached
            if not at_gap:
                self._gap = None
            if at_gap or len(heads) < BATCH:
                return at_gap

    def _young_gap(self, walked: int, next_created_at: datetime) -> bool:
        """Wait at the gap after `walked`: until `settle_s` after this feed first stopped there,
        unless the row after the gap is older than that already (a rolled back insert's gap)."""
        if not self._settle or next_created_at < utcnow() - self._settle:
            return False
        now = time.monotonic()
        if self._gap is None or self._gap[0] != walked:
            self._gap = (walked, now)
        return now - self._gap[1] < self._settle.total_seconds()

    async def stream(self, case_id: str, last_event_id: int) -> AsyncIterator[ProgressEvent]:
        """The case's progress events after `last_event_id`, then live ones, each exactly once."""
        queue: asyncio.Queue[ProgressEvent] = asyncio.Queue()
        self._subscribers[case_id].add(queue)
        try:
            sent, walked = last_event_id, self._last_id  # the feed hands out what comes after `walked`
            while sent < walked:  # the backlog, in batches
                query = select(Event).where(Event.case_id == case_id, Event.id > sent, Event.id <= walked, _shown())
                async with self._sessions() as session:
                    rows = list(await session.scalars(query.order_by(Event.id).limit(BATCH)))
                for row in rows:
                    sent = row.id
                    yield ProgressEvent.of(row)
                if len(rows) < BATCH:
                    break
            while True:
                event = await queue.get()
                if event.id > sent:
                    sent = event.id
                    yield event
        finally:
            self._subscribers[case_id].discard(queue)
            if not self._subscribers[case_id]:
                self._subscribers.pop(case_id, None)


def _shown() -> ColumnElement[bool]:
    return or_(*(Event.type.startswith(prefix) for prefix in PROGRESS_PREFIXES))


def get_progress(request: Request) -> ProgressFeed:
    """This process's feed, started in the app's lifespan."""
    return request.app.state.services.progress


ProgressDep = Annotated[ProgressFeed, Depends(get_progress)]
