"""Live progress of a case's documents: one feed per process, fanned out to SSE clients.

The `events` table is the source of truth; progress events are its `document.*`, `consent.*` and
`forwarding.*` rows and the patient's notifications (`notification.*`, written by
`app.notifications.service`). One `ProgressFeed` task per process polls for new rows (an indexed
range scan on the ID) and hands each to the queues of the clients watching its case, so 500
clients cost one query per poll,
not 500. Events written by any process are seen, because the feed reads the shared table.

A client first subscribes, then reads the backlog after its `Last-Event-ID` from the table,
then follows the feed, skipping IDs it has already sent: nothing is missed and nothing is sent
twice across a reconnect.

Rows are walked in ID order. On Postgres, IDs are taken at insert time but become visible at
commit, so a row with a smaller ID can appear after a larger one: the walk therefore stops
(without moving past it) at the first row younger than `settle_s` and takes it up again on the
next poll, so a straggler has that long to commit (every event-writing transaction here is
short and does no outside I/O). SQLite serialises writers, so there `settle_s` is 0. The
backlog reads walk the same way. (`created_at` is never used as a filter: it is stamped before
the transaction's write lock, so it is not monotonic in ID.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import utcnow
from app.runtime.models import Event

log = logging.getLogger(__name__)

# What the patient sees on a case's stream: documents' progress, notifications, consents, forwardings.
PROGRESS_PREFIXES = ("document.", "notification.", "consent.", "forwarding.")
BATCH = 500


def event_json(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type,
        "case_id": event.case_id,
        "document_id": event.document_id,
        "workflow_id": event.workflow_id,
        "payload": event.payload,
        "created_at": event.created_at.isoformat(),
    }


class ProgressFeed:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, poll_s: float, settle_s: float) -> None:
        self._sessions = sessions
        self._poll_s = poll_s
        self._settle = timedelta(seconds=settle_s)
        self._subscribers: defaultdict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self._last_id = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def clients(self) -> int:
        """Streams subscribed now (the `curaway_sse_clients` metric)."""
        return sum(len(queues) for queues in self._subscribers.values())

    async def start(self) -> None:
        async with self._sessions() as session:
            self._last_id = await session.scalar(select(Event.id).order_by(Event.id.desc()).limit(1)) or 0
        self._task = asyncio.create_task(self._run(), name="progress-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _settled(self, after: int, case_id: str | None = None) -> tuple[list[Event], bool]:
        """Progress rows after `after`, in ID order, up to the first unsettled one; (rows, more)."""
        shown = or_(*(Event.type.startswith(prefix) for prefix in PROGRESS_PREFIXES))
        query = select(Event).where(Event.id > after, shown)
        if case_id is not None:
            query = query.where(Event.case_id == case_id)
        async with self._sessions() as session:
            rows = list(await session.scalars(query.order_by(Event.id).limit(BATCH)))
        horizon = utcnow() - self._settle
        for index, row in enumerate(rows):
            if self._settle and row.created_at > horizon:
                return rows[:index], False
        return rows, len(rows) == BATCH

    async def _run(self) -> None:
        while True:
            try:
                await self._poll()
            except Exception:
                log.exception("progress feed poll failed")
            await asyncio.sleep(self._poll_s)

    async def _poll(self) -> None:
        more = True
        while more:
            rows, more = await self._settled(self._last_id)
            for row in rows:
                self._last_id = row.id
                for queue in self._subscribers.get(row.case_id or "", ()):
                    queue.put_nowait(event_json(row))

    async def stream(self, case_id: str, last_event_id: int) -> AsyncIterator[dict[str, Any]]:
        """The case's progress events after `last_event_id`, then live ones, each exactly once."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._subscribers[case_id].add(queue)
        try:
            sent, more = last_event_id, True
            while more:  # the backlog, in batches
                rows, more = await self._settled(sent, case_id)
                for row in rows:
                    sent = row.id
                    yield event_json(row)
            while True:
                event = await queue.get()
                if event["id"] > sent:
                    sent = event["id"]
                    yield event
        finally:
            self._subscribers[case_id].discard(queue)
            if not self._subscribers[case_id]:
                self._subscribers.pop(case_id, None)


def get_progress(request: Request) -> ProgressFeed:
    """This process's feed, started in the app's lifespan."""
    return request.app.state.services.progress


ProgressDep = Annotated[ProgressFeed, Depends(get_progress)]
