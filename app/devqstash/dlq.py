"""The dead-letter queue: messages whose retries ran out, with their last response.

A DLQ entry (`qstash_dlq`) points at its `failed` message row, which keeps the body and the
configuration needed to publish a copy. Deleting an entry deletes that row (the entry goes
with it through `ON DELETE CASCADE`); entries older than `DLQ_RETENTION` are pruned.
DLQ IDs are `<unix-ms>-<n>` like QStash's and sort by creation, which is the paging order.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.devqstash.models import QStashDlqEntry, QStashMessage
from app.devqstash.views import ms

DLQ_RETENTION = timedelta(days=30)
MAX_DLQ_PAGE = 100
MAX_RESPONSE_BODY = 1_000_000


@dataclass(frozen=True, slots=True)
class DlqFilter:
    message_id: str | None = None
    url: str | None = None
    response_status: int | None = None
    label: str | None = None
    queue_name: str | None = None
    schedule_id: str | None = None
    from_date: datetime | None = None
    to_date: datetime | None = None


def new_dlq_id(now: datetime) -> str:
    return f"{ms(now)}-{secrets.randbelow(10**9):09d}"


def add(
    session: AsyncSession,
    message: QStashMessage,
    *,
    now: datetime,
    status: int,
    headers: dict[str, list[str]],
    body: bytes,
    error: str | None,
) -> str:
    """Create the DLQ entry of a message that just failed for good; returns its ID."""
    dlq_id = new_dlq_id(now)
    session.add(
        QStashDlqEntry(
            dlq_id=dlq_id,
            message_id=message.id,
            response_status=status,
            response_headers=headers,
            response_body=body[:MAX_RESPONSE_BODY],
            error=error,
            created_at=now,
        )
    )
    return dlq_id


async def list_entries(
    session: AsyncSession, *, filters: DlqFilter, cursor: str | None, count: int
) -> tuple[list[tuple[QStashDlqEntry, QStashMessage]], str | None]:
    """Oldest first; the cursor is the last DLQ ID returned, `None` at the end."""
    query = _joined().order_by(QStashDlqEntry.dlq_id).limit(count + 1)
    if cursor:
        query = query.where(QStashDlqEntry.dlq_id > cursor)
    for condition in _conditions(filters):
        query = query.where(condition)
    rows = [(entry, message) for entry, message in await session.execute(query)]
    more = len(rows) > count
    rows = rows[:count]
    return rows, (rows[-1][0].dlq_id if more else None)


def _joined() -> Any:
    return select(QStashDlqEntry, QStashMessage).join(QStashMessage, QStashMessage.id == QStashDlqEntry.message_id)


def _conditions(filters: DlqFilter) -> list[Any]:
    pairs = [
        (filters.message_id, QStashMessage.id),
        (filters.url, QStashMessage.url),
        (filters.response_status, QStashDlqEntry.response_status),
        (filters.label, QStashMessage.label),
        (filters.queue_name, QStashMessage.queue_name),
        (filters.schedule_id, QStashMessage.schedule_id),
    ]
    conditions = [column == value for value, column in pairs if value is not None]
    if filters.from_date:
        conditions.append(QStashDlqEntry.created_at >= filters.from_date)
    if filters.to_date:
        conditions.append(QStashDlqEntry.created_at <= filters.to_date)
    return conditions


async def get(session: AsyncSession, dlq_id: str) -> tuple[QStashDlqEntry, QStashMessage] | None:
    row = (await session.execute(_joined().where(QStashDlqEntry.dlq_id == dlq_id))).first()
    return None if row is None else (row[0], row[1])


async def remove(session: AsyncSession, dlq_ids: Sequence[str]) -> int:
    """Delete entries and their dead messages; returns how many entries went."""
    owners = select(QStashDlqEntry.message_id).where(QStashDlqEntry.dlq_id.in_(list(dlq_ids)))
    message_ids = list(await session.scalars(owners))
    if not message_ids:
        return 0
    stmt = delete(QStashMessage).where(QStashMessage.id.in_(message_ids))
    await session.execute(stmt.execution_options(synchronize_session=False))
    return len(message_ids)


async def prune(session: AsyncSession, *, now: datetime) -> int:
    """Delete entries (and their messages) older than the retention."""
    old = select(QStashDlqEntry.dlq_id).where(QStashDlqEntry.created_at < now - DLQ_RETENTION)
    return await remove(session, list(await session.scalars(old)))
