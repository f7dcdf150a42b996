"""Live progress of a case's documents: one feed per process, fanned out to SSE clients.

The `events` table is the source of truth; progress events are its `document.*` rows. One
`ProgressFeed` task per process polls for new rows (an indexed range scan on the ID) and hands
each to the queues of the clients watching its case, so 500 clients cost one query per poll,
not 500. Events written by any process are seen, because the feed reads the shared table.

A client first subscribes, then reads the backlog after its `Last-Event-ID` from the table,
then follows the feed, skipping IDs it has already sent: nothing is missed and nothing is sent
twice across a reconnect.

On Postgres, IDs are taken at insert time but become visible at commit, so a row with a
smaller ID can appear after a larger one. The feed therefore only publishes rows older than
`settle_s` (a fraction of a second; every event-writing transaction here is short and does no
outside I/O), and the backlog reads stop at the same horizon.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import utcnow
from app.runtime.models import Event

log = logging.getLogger(__name__)

PROGRESS_PREFIX = "document."
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

    async def start(self) -> None:
        async with self._sessions() as session:
            self._last_id = await session.scalar(select(Event.id).order_by(Event.id.desc()).limit(1)) or 0
        self._task = asyncio.create_task(self._run(), name="progress-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _query(self, after: int, case_id: str | None = None) -> Any:
        query = (
            select(Event)
            .where(Event.id > after, Event.type.startswith(PROGRESS_PREFIX), Event.created_at <= utcnow() - self._settle)
            .order_by(Event.id)
            .limit(BATCH)
        )
        return query if case_id is None else query.where(Event.case_id == case_id)

    async def _run(self) -> None:
        while True:
            try:
                await self._poll()
            except Exception:
                log.exception("progress feed poll failed")
            await asyncio.sleep(self._poll_s)

    async def _poll(self) -> None:
        while True:
            async with self._sessions() as session:
                rows = list(await session.scalars(self._query(self._last_id)))
            for row in rows:
                self._last_id = max(self._last_id, row.id)
                for queue in self._subscribers.get(row.case_id or "", ()):
                    queue.put_nowait(event_json(row))
            if len(rows) < BATCH:
                return

    async def stream(self, case_id: str, last_event_id: int) -> AsyncIterator[dict[str, Any]]:
        """The case's progress events after `last_event_id`, then live ones, each exactly once."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._subscribers[case_id].add(queue)
        try:
            sent = last_event_id
            while True:  # the backlog, in batches
                async with self._sessions() as session:
                    rows = list(await session.scalars(self._query(sent, case_id)))
                for row in rows:
                    sent = row.id
                    yield event_json(row)
                if len(rows) < BATCH:
                    break
            while True:
                event = await queue.get()
                if event["id"] > sent:
                    sent = event["id"]
                    yield event
        finally:
            self._subscribers[case_id].discard(queue)
            if not self._subscribers[case_id]:
                self._subscribers.pop(case_id, None)
