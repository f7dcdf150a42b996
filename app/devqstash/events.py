"""The message log (`qstash_events`): what `/v2/events` serves and what usage is counted from.

Every state change of a message writes one row in the same transaction as the change, so the
log never claims something that was rolled back. Each message's `CREATED` row keeps its
destination and creation time for `usage_per_day` (messages per destination per day).
Rows older than `EVENT_RETENTION` are pruned by the delivery loop.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.devqstash.models import EventState, QStashEvent

EVENT_RETENTION = timedelta(days=14)
MAX_EVENTS_PAGE = 1000


@dataclass(frozen=True, slots=True)
class EventFilter:
    message_id: str | None = None
    state: str | None = None
    url: str | None = None
    from_date: datetime | None = None
    to_date: datetime | None = None


_INSERT = insert(QStashEvent.__table__)  # Core: one INSERT, no unit of work on the delivery path


async def record(
    session: AsyncSession, *, message_id: str, state: EventState, url: str, now: datetime, **details: Any
) -> None:
    """Write one log row in the session's transaction; `None` details are left out."""
    kept = {key: value for key, value in details.items() if value is not None}
    values = {"message_id": message_id, "state": state, "url": url, "details": kept, "created_at": now}
    await session.execute(_INSERT, values)


async def list_events(
    session: AsyncSession, *, filters: EventFilter, cursor: int | None, count: int
) -> tuple[list[QStashEvent], int | None]:
    """Newest first; the cursor is the last ID returned, `None` at the end."""
    query = select(QStashEvent).order_by(QStashEvent.id.desc()).limit(count + 1)
    if cursor is not None:
        query = query.where(QStashEvent.id < cursor)
    for condition in _conditions(filters):
        query = query.where(condition)
    rows = list(await session.scalars(query))
    more = len(rows) > count
    rows = rows[:count]
    return rows, (rows[-1].id if more else None)


def _conditions(filters: EventFilter) -> list[Any]:
    conditions = []
    if filters.message_id:
        conditions.append(QStashEvent.message_id == filters.message_id)
    if filters.state:
        conditions.append(QStashEvent.state == filters.state)
    if filters.url:
        conditions.append(QStashEvent.url == filters.url)
    if filters.from_date:
        conditions.append(QStashEvent.created_at >= filters.from_date)
    if filters.to_date:
        conditions.append(QStashEvent.created_at <= filters.to_date)
    return conditions


async def usage_per_day(session: AsyncSession, *, since: datetime) -> list[dict[str, Any]]:
    """Messages created per UTC day and destination (scheme, host and path, no query)."""
    query = select(QStashEvent.url, QStashEvent.created_at).where(
        QStashEvent.state == EventState.CREATED, QStashEvent.created_at >= since
    )
    counts: Counter[tuple[str, str]] = Counter()
    for url, created_at in await session.execute(query):
        parts = urlsplit(url)
        counts[(created_at.date().isoformat(), f"{parts.scheme}://{parts.netloc}{parts.path}")] += 1
    return [{"day": day, "destination": destination, "messages": n} for (day, destination), n in sorted(counts.items())]


async def prune(session: AsyncSession, *, now: datetime) -> int:
    """Delete log rows older than the retention; returns how many."""
    result = await session.execute(delete(QStashEvent).where(QStashEvent.created_at < now - EVENT_RETENTION))
    return result.rowcount or 0
