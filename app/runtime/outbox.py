"""The outbox: "publish after commit" that survives a crash or a failed publish in between.

A state change that must wake a run which no delivery in flight will bring back (a run just
created, a child started, a parent whose child finished, waiters woken by `notify`, a run
resumed) writes its continuation here *in the same transaction*. After the commit the
continuation is published and its row deleted, or, in a serving process, the run is driven at
once and the row deleted without a publish when that drive has taken the run off its hands
(`Runtime.flush`). A row left behind (the process died, or QStash refused the publish) is
re-sent by the watchdog's sweep until QStash accepts it; the deduplication ID
`run_id.position.key` makes a second send harmless.

Continuations that a delivery in flight hands back (a sleep, a retry later, a step past the
inline budget) need no row: that delivery is acknowledged only after its publish succeeded,
so a crash before it means QStash delivers it again and the replay publishes again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import transaction
from app.runtime.models import WorkflowOutbox

log = logging.getLogger(__name__)

OUTBOX = WorkflowOutbox.__table__
_INSERT = insert(OUTBOX).returning(OUTBOX.c.id, sort_by_parameter_order=True)
_DELETE = delete(OUTBOX).where(OUTBOX.c.id.in_(bindparam("ids", expanding=True)))


@dataclass(frozen=True, slots=True)
class RunRef:
    """Where a run continues: enough to publish its continuation."""

    run_id: str
    workflow: str
    position: int


@dataclass(frozen=True, slots=True)
class Wake:
    """One outbox row: publish `ref`'s continuation with deduplication key `key`."""

    id: int
    ref: RunRef
    key: str


Send = Callable[[RunRef, str], Awaitable[None]]


def deduplication_id(run_id: str, position: int, key: str, resumes: int = 0) -> str:
    """The QStash deduplication ID of a continuation; a resumed run gets fresh ones.

    QStash drops a repeated ID for 10 minutes, so after `resume` the same step's `retry-1` or
    call must not reuse the ID it had before the run failed.
    """
    generation = f".r{resumes}" if resumes else ""
    return f"{run_id}.{position}.{key}{generation}"


async def add(session: AsyncSession, ref: RunRef, key: str, *, now: datetime) -> Wake:
    """Write a continuation in the caller's transaction; returns it for sending after commit."""
    (wake,) = await add_many(session, [(ref, key)], now=now)
    return wake


async def add_many(session: AsyncSession, continuations: Sequence[tuple[RunRef, str]], *, now: datetime) -> list[Wake]:
    """`add` for several continuations (`(ref, key)` each), in one INSERT."""
    if not continuations:
        return []
    values = [
        {"run_id": ref.run_id, "workflow": ref.workflow, "position": ref.position, "key": key, "created_at": now}
        for ref, key in continuations
    ]
    row_ids = (await session.execute(_INSERT, values)).scalars().all()
    return [Wake(row_id, ref, key) for row_id, (ref, key) in zip(row_ids, continuations, strict=True)]


class Outbox:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], send: Send) -> None:
        self.sessions = sessions
        self.send = send
        self._done: list[int] = []  # rows published (or their run driven), to delete
        self._deleting: asyncio.Task[None] | None = None

    async def flush(self, wakes: Sequence[Wake]) -> int:
        """Publish these continuations; a failed publish stays for the sweep. Returns how many went out.

        The rows of those that went out are deleted in the background (`_delete_done`): the
        caller (a delivery, a request) does not wait for that cleanup.
        """
        sent = []
        for wake in wakes:
            try:
                await self.send(wake.ref, wake.key)
            except Exception:  # QStash refused or is unreachable: the sweep sends it later
                continue
            sent.append(wake)
        self.discard(sent)
        return len(sent)

    def discard(self, wakes: Sequence[Wake]) -> None:
        """Delete these rows in the background: published, or their run taken care of otherwise."""
        if not wakes:
            return
        self._done += [wake.id for wake in wakes]
        if self._deleting is None or self._deleting.done():
            self._deleting = asyncio.create_task(self._delete_done(), name="outbox-delete")

    async def _delete_done(self) -> None:
        """Delete the rows done with, all those done with meanwhile in one DELETE.

        Twenty children started by one `gather` cost one DELETE, not twenty. A row whose delete
        is lost (a crash, a database error) is only sent again by the sweep, and QStash drops
        the copy (same deduplication ID).
        """
        while self._done:
            batch, self._done = self._done, []
            try:
                async with transaction(self.sessions) as session:
                    await session.execute(_DELETE, {"ids": batch})
            except Exception as exc:
                log.warning("could not delete %d outbox row(s) (%s); the sweep re-sends them", len(batch), exc)

    async def close(self) -> None:
        """Finish the deletes under way (at shutdown)."""
        if self._deleting is not None:
            await self._deleting

    async def sweep(self, *, older_than: timedelta, now: datetime, limit: int = 500) -> int:
        """Re-send continuations left behind for longer than `older_than`; returns how many went out."""
        async with self.sessions() as session:
            rows = await session.scalars(
                select(WorkflowOutbox)
                .where(WorkflowOutbox.created_at < now - older_than)
                .order_by(WorkflowOutbox.id)
                .limit(limit)
            )
            wakes = [Wake(r.id, RunRef(r.run_id, r.workflow, r.position), r.key) for r in rows]
        return await self.flush(wakes)
