"""Notifications: record one per idempotency key, show it in-app, batch them into digests.

- `notify` inserts the row and its in-app event (`notification.<kind>` on the case's SSE
  stream) in the caller's transaction, and does nothing when the key exists: the insert and
  the event commit together, so a replayed step can neither show it twice nor lose it.
- `make_digest` turns a patient's pending notifications into one digest in one transaction:
  each pending row is marked `digested` with the digest's ID as the digest is inserted, so a
  notification is in exactly one digest (none lost, none twice).
- `deliverable` / `mark_sent`: digests waiting for the mail/SMS sender (`senders.py`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.ids import new_id
from app.notifications.models import Notification, NotificationKind, NotificationState
from app.runtime.events import record_event


def _insert(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(Notification)


async def notify(
    session: AsyncSession,
    *,
    kind: str,
    patient_id: str,
    key: str,
    case_id: str | None = None,
    payload: dict[str, Any] | None = None,
    state: NotificationState = NotificationState.PENDING,
) -> str | None:
    """Record the notification unless `key` exists; returns its ID, or None if it existed."""
    values = {
        "id": new_id("ntf"),
        "kind": kind,
        "patient_id": patient_id,
        "case_id": case_id,
        "payload": payload or {},
        "state": state,
        "idempotency_key": key,
        "created_at": utcnow(),
    }
    stmt = _insert(session).values(**values).on_conflict_do_nothing(index_elements=["idempotency_key"])
    inserted = await session.scalar(stmt.returning(Notification.id))
    if inserted is None:
        return None
    event = {"notification_id": inserted, "kind": kind, "patient_id": patient_id, **(payload or {})}
    record_event(session, f"notification.{kind}", case_id=case_id, payload=event)
    return inserted


async def patients_with_pending(session: AsyncSession, *, after: str, limit: int) -> list[str]:
    """Up to `limit` patients after `after` who have notifications waiting for a digest, by ID."""
    query = (
        select(Notification.patient_id)
        .where(Notification.state == NotificationState.PENDING, Notification.patient_id > after)
        .group_by(Notification.patient_id)
        .order_by(Notification.patient_id)
        .limit(limit)
    )
    return list(await session.scalars(query))


async def make_digest(session: AsyncSession, *, patient_id: str, key: str, outbound: bool) -> str | None:
    """The patient's pending notifications as one digest (None when none are pending).

    With `outbound` the digest waits in `outbox` for the sender; otherwise it is delivered
    in-app by its event, committed with it, and is `sent` at once.
    """
    items = list(
        await session.scalars(
            select(Notification)
            .where(Notification.patient_id == patient_id, Notification.state == NotificationState.PENDING)
            .order_by(Notification.created_at, Notification.id)
            .with_for_update()
        )
    )
    if not items:
        return None
    payload = {
        "count": len(items),
        "items": [{"id": n.id, "kind": n.kind, "case_id": n.case_id} for n in items],
    }
    case_id = next((n.case_id for n in reversed(items) if n.case_id), None)
    state = NotificationState.OUTBOX if outbound else NotificationState.SENT
    digest_id = await notify(
        session,
        kind=NotificationKind.DIGEST,
        patient_id=patient_id,
        key=key,
        case_id=case_id,
        payload=payload,
        state=state,
    )
    if digest_id is None:  # this key's digest exists: it was made before, leave the rest pending
        return None
    ids = [n.id for n in items]
    await session.execute(
        update(Notification)
        .where(Notification.id.in_(ids), Notification.state == NotificationState.PENDING)
        .values(state=NotificationState.DIGESTED, digest_id=digest_id)
    )
    if not outbound:
        await session.execute(update(Notification).where(Notification.id == digest_id).values(sent_at=utcnow()))
    return digest_id


async def deliverable(session: AsyncSession, *, limit: int) -> list[Notification]:
    """Notifications waiting for the outbound sender, oldest first."""
    query = (
        select(Notification)
        .where(Notification.state == NotificationState.OUTBOX)
        .order_by(Notification.created_at, Notification.id)
        .limit(limit)
    )
    return list(await session.scalars(query))


async def mark_sent(session: AsyncSession, *, notification_id: str) -> None:
    await session.execute(
        update(Notification)
        .where(Notification.id == notification_id, Notification.state == NotificationState.OUTBOX)
        .values(state=NotificationState.SENT, sent_at=utcnow())
    )


async def count_by_state(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(Notification.state, func.count()).group_by(Notification.state))
    return {state: count for state, count in rows.all()}
