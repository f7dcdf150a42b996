"""Persistence of messages: publish (with deduplication), claims, settling, cancellation.

Functions take the session first and only `flush()`; the caller owns the transaction.

Claims (the one place where two deliverers can race):
- `claim_due` moves due `pending` rows to `delivering` in one `UPDATE ... WHERE id IN
  (SELECT ... FOR UPDATE SKIP LOCKED) AND state = 'pending' RETURNING`, stamping a fresh
  `claim_token` and `claimed_until`. On Postgres concurrent claimers skip each other's rows and
  the outer `state` check holds under READ COMMITTED re-evaluation; SQLite runs every
  transaction as `BEGIN IMMEDIATE`, so claimers are serialised. Either way one attempt is
  claimed by exactly one deliverer.
- A claim is a short lease: its holder extends `claimed_until` with `renew` while the attempt
  is in flight. `claim_expired` takes over `delivering` rows whose holder let `claimed_until`
  pass (a dead process); the caller counts that as a failed attempt.
- Every later write (`settle_*`, `release`) is conditional on the claim token, so a holder
  whose claim was taken over, or whose message was cancelled, changes nothing.

Dialect differences (the `INSERT ... ON CONFLICT` flavour) live in `_insert`.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.devqstash import events
from app.devqstash.models import ACTIVE_STATES, EventState, MessageState, QStashDedup, QStashMessage
from app.devqstash.spec import DEDUP_WINDOW, MessageSpec

_ALPHABET = string.ascii_letters + string.digits
# The delivery path's statements are Core, on the table (no ORM unit of work or bulk-ORM path).
M = QStashMessage.__table__
_INSERT = insert(M)
_NO_SYNC = {"synchronize_session": False}


def new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(26))


def _insert(session: AsyncSession, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


async def publish(session: AsyncSession, spec: MessageSpec, *, now: datetime) -> tuple[str, bool]:
    """Store a message; returns `(message_id, deduplicated)`. A duplicate stores nothing."""
    now = spec.received_at or now
    message_id = new_id("msg_")
    if spec.dedup_key:
        owner = await _take_dedup_key(session, spec.dedup_key, message_id, now=now)
        if owner != message_id:
            return owner, True
    await session.execute(_INSERT, _row(spec, message_id, now=now))
    await events.record(
        session,
        message_id=message_id,
        state=EventState.CREATED,
        url=spec.url,
        now=now,
        label=spec.label,
        queueName=spec.queue_name,
    )
    await session.flush()
    return message_id, False


async def _take_dedup_key(session: AsyncSession, key: str, message_id: str, *, now: datetime) -> str:
    """The message that owns `key`: `message_id` if the key was free or expired."""
    stmt = _insert(session, QStashDedup).values(key=key, message_id=message_id, expires_at=now + DEDUP_WINDOW)
    stmt = stmt.on_conflict_do_update(
        index_elements=[QStashDedup.key],
        set_={"message_id": stmt.excluded.message_id, "expires_at": stmt.excluded.expires_at},
        where=QStashDedup.expires_at <= now,
    ).returning(QStashDedup.message_id)
    owner = (await session.execute(stmt)).scalar_one_or_none()
    if owner is None:
        owner = await session.scalar(select(QStashDedup.message_id).where(QStashDedup.key == key))
    return owner or message_id


def _row(spec: MessageSpec, message_id: str, *, now: datetime) -> dict[str, Any]:
    due = spec.not_before or now
    return dict(
        id=message_id,
        url=spec.url,
        queue_name=spec.queue_name,
        method=spec.method,
        body=spec.body,
        content_type=spec.content_type,
        forward_headers=spec.forward_headers,
        control_headers=spec.control_headers,
        callback=spec.callback,
        callback_headers=spec.callback_headers,
        failure_callback=spec.failure_callback,
        failure_callback_headers=spec.failure_callback_headers,
        max_retries=spec.max_retries,
        retry_delay=spec.retry_delay,
        timeout_s=spec.timeout_s,
        label=spec.label,
        schedule_id=spec.schedule_id,
        caller_ip=spec.caller_ip,
        state=MessageState.PENDING,
        retried=0,
        not_before=due,
        next_delivery_at=due,
        created_at=now,
    )


async def active_message(session: AsyncSession, message_id: str) -> QStashMessage | None:
    """A message that is still to be delivered (pending or in flight)."""
    message = await session.get(QStashMessage, message_id)
    return message if message is not None and message.state in ACTIVE_STATES else None


async def claim_due(
    session: AsyncSession, *, now: datetime, limit: int, token: str, claimed_until: datetime
) -> list[Any]:
    """Claim up to `limit` due pending messages, oldest due first (read-only rows named like `QStashMessage`)."""
    pending = M.c.state == MessageState.PENDING
    due = (
        select(M.c.id)
        .where(pending, M.c.next_delivery_at <= now)
        .order_by(M.c.next_delivery_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return await _claim(session, due, pending, token=token, claimed_until=claimed_until)


async def claim_expired(
    session: AsyncSession, *, now: datetime, limit: int, token: str, claimed_until: datetime
) -> list[Any]:
    """Take over up to `limit` deliveries whose holder let the claim lapse."""
    expired = (M.c.state == MessageState.DELIVERING) & (M.c.claimed_until < now)
    lapsed = select(M.c.id).where(expired).limit(limit).with_for_update(skip_locked=True)
    return await _claim(session, lapsed, expired, token=token, claimed_until=claimed_until)


async def _claim(session: AsyncSession, ids: Any, condition: Any, *, token: str, claimed_until: datetime) -> list[Any]:
    stmt = (
        update(M)
        .where(M.c.id.in_(ids), condition)
        .values(state=MessageState.DELIVERING, claim_token=token, claimed_until=claimed_until)
        .returning(*M.c)
    )
    return list(await session.execute(stmt))


async def renew(session: AsyncSession, tokens: set[str], *, claimed_until: datetime) -> set[str]:
    """Extend every claim held under one of `tokens`; returns the IDs of the messages still held."""
    if not tokens:
        return set()
    stmt = (
        update(M)
        .where(M.c.state == MessageState.DELIVERING, M.c.claim_token.in_(sorted(tokens)))
        .values(claimed_until=claimed_until)
        .returning(M.c.id)
    )
    return set(await session.scalars(stmt))


def _claimed(message_id: str, token: str) -> Any:
    return (M.c.id == message_id) & (M.c.claim_token == token)


async def settle_delivered(session: AsyncSession, message: QStashMessage, token: str, *, now: datetime) -> bool:
    """Delete a delivered message; False if the claim was lost (nothing changed)."""
    result = await session.execute(delete(M).where(_claimed(message.id, token)))
    if result.rowcount != 1:
        return False
    await events.record(
        session, message_id=message.id, state=EventState.DELIVERED, url=message.url, now=now, retried=message.retried
    )
    return True


async def settle_retry(
    session: AsyncSession, message: QStashMessage, token: str, *, retried: int, due: datetime
) -> bool:
    """Put a failed message back as pending, due at `due`, with `retried` retries made."""
    return await _update_claimed(
        session,
        message,
        token,
        state=MessageState.PENDING,
        retried=retried,
        next_delivery_at=due,
        claim_token=None,
        claimed_until=None,
    )


async def settle_failed(session: AsyncSession, message: QStashMessage, token: str, *, retried: int) -> bool:
    """Mark a message dead (its DLQ entry is written by the caller)."""
    return await _update_claimed(
        session, message, token, state=MessageState.FAILED, retried=retried, claim_token=None, claimed_until=None
    )


async def _update_claimed(session: AsyncSession, message: QStashMessage, token: str, **values: Any) -> bool:
    result = await session.execute(update(M).where(_claimed(message.id, token)).values(**values))
    return result.rowcount == 1


async def release(session: AsyncSession, claims: dict[str, str]) -> int:
    """Give claimed messages back as pending without counting an attempt (shutdown)."""
    released = 0
    for message_id, token in claims.items():
        stmt = update(QStashMessage).where(_claimed(message_id, token))
        stmt = stmt.values(state=MessageState.PENDING, claim_token=None, claimed_until=None)
        released += (await session.execute(stmt.execution_options(**_NO_SYNC))).rowcount or 0
    return released


async def cancel(session: AsyncSession, message_ids: Sequence[str] | None, *, now: datetime) -> int:
    """Delete pending or in-flight messages (all of them when `message_ids` is None)."""
    stmt = delete(QStashMessage).where(QStashMessage.state.in_(list(ACTIVE_STATES)))
    if message_ids is not None:
        stmt = stmt.where(QStashMessage.id.in_(list(message_ids)))
    stmt = stmt.returning(QStashMessage.id, QStashMessage.url).execution_options(**_NO_SYNC)
    rows = list(await session.execute(stmt))
    for message_id, url in rows:
        await events.record(session, message_id=message_id, state=EventState.CANCELED, url=url, now=now)
    return len(rows)


async def prune_dedup(session: AsyncSession, *, now: datetime) -> int:
    result = await session.execute(delete(QStashDedup).where(QStashDedup.expires_at < now))
    return result.rowcount or 0
