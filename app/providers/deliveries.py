"""Webhook deliveries (`provider_webhooks`) and their attempts: state, history, dead letters.

A delivery is one packet for one provider. Its ID is the `webhook-id` of every attempt of every
series (a replay starts a new series), so receivers can deduplicate. Every attempt is a row in
`provider_webhook_attempts` and a `webhook.attempt` event, written in one transaction with the
delivery's new state; the ops actions (`list_dead_letters`, `replay_dead_letter`,
`delivery_history`) are plain service functions the ops routes call.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.errors import Conflict, NotFound
from app.ids import new_id
from app.providers.models import DeliveryStatus, ProviderWebhook, WebhookAttempt
from app.providers.schemas import AttemptRead, DeliveryHistory, DeliveryRead
from app.runtime.events import record_event
from app.runtime.ids import derived_run_id
from app.runtime.runtime import Runtime

WEBHOOK_DELIVERY = "webhook-delivery"


def delivery_run_id(delivery_id: str, series: int) -> str:
    """The run of one series of a delivery (a replay is a new series, so a new run)."""
    return derived_run_id(WEBHOOK_DELIVERY, delivery_id, str(series))


async def create_deliveries(
    session: AsyncSession, *, forwarding_id: str, case_id: str, provider_ids: list[str]
) -> list[ProviderWebhook]:
    """One pending delivery per provider (kept if already there: a retried step adds none)."""
    existing = {
        row.provider_id: row
        for row in await session.scalars(select(ProviderWebhook).where(ProviderWebhook.forwarding_id == forwarding_id))
    }
    rows = []
    for provider_id in provider_ids:
        row = existing.get(provider_id)
        if row is None:
            row = ProviderWebhook(
                id=new_id("msg"),
                provider_id=provider_id,
                forwarding_id=forwarding_id,
                case_id=case_id,
                status=DeliveryStatus.PENDING,
                attempts=0,
                series=0,
            )
            session.add(row)
        rows.append(row)
    await session.flush()
    return rows


async def get_delivery(session: AsyncSession, *, delivery_id: str, lock: bool = False) -> ProviderWebhook:
    row = await session.get(ProviderWebhook, delivery_id, with_for_update=lock, populate_existing=lock)
    if row is None:
        raise NotFound(f"no delivery {delivery_id}")
    return row


async def forwarding_deliveries(session: AsyncSession, *, forwarding_id: str) -> list[ProviderWebhook]:
    query = (
        select(ProviderWebhook)
        .where(ProviderWebhook.forwarding_id == forwarding_id)
        .order_by(ProviderWebhook.provider_id)
    )
    return list(await session.scalars(query))


def finish(session: AsyncSession, row: ProviderWebhook, status: DeliveryStatus, *, reason: str | None = None) -> None:
    """The delivery's final state, with its `forwarding.provider_<status>` event on the case."""
    row.status = status
    row.reason = reason
    row.finished_at = utcnow()
    record_event(  # on the case's stream: the patient sees each provider's outcome
        session,
        f"forwarding.provider_{status.value}",
        case_id=row.case_id,
        payload={
            "delivery_id": row.id,
            "provider_id": row.provider_id,
            "forwarding_id": row.forwarding_id,
            "attempts": row.attempts,
            "last_status": row.last_status,
            "reason": reason,
        },
    )


async def recorded_attempt(
    session: AsyncSession, *, delivery_id: str, series: int, attempt: int
) -> WebhookAttempt | None:
    query = select(WebhookAttempt).where(
        WebhookAttempt.delivery_id == delivery_id, WebhookAttempt.series == series, WebhookAttempt.attempt == attempt
    )
    return await session.scalar(query)


def record_attempt(
    session: AsyncSession,
    row: ProviderWebhook,
    *,
    series: int,
    attempt: int,
    outcome: str,
    status_code: int | None = None,
    latency_ms: int | None = None,
    error: str | None = None,
    excerpt: str | None = None,
    retry_in_s: float | None = None,
) -> WebhookAttempt:
    """One attempt in the provider's history and as a `webhook.attempt` event; updates the delivery."""
    record = WebhookAttempt(
        delivery_id=row.id,
        provider_id=row.provider_id,
        series=series,
        attempt=attempt,
        outcome=outcome,
        status_code=status_code,
        latency_ms=latency_ms,
        error=error,
        response_excerpt=excerpt,
        retry_in_s=retry_in_s,
        detail={},
        created_at=utcnow(),
    )
    session.add(record)
    row.attempts += 1
    row.last_status = status_code
    row.last_error = error
    record_event(
        session,
        "webhook.attempt",
        case_id=row.case_id,
        payload={
            "delivery_id": row.id,
            "provider_id": row.provider_id,
            "series": series,
            "attempt": attempt,
            "outcome": outcome,
            "status_code": status_code,
            "latency_ms": latency_ms,
            "error": error,
            "response_excerpt": excerpt,
            "retry_in_s": retry_in_s,
        },
    )
    return record


async def delivery_history(session: AsyncSession, *, delivery_id: str) -> DeliveryHistory:
    row = await get_delivery(session, delivery_id=delivery_id)
    return (await _with_history(session, [row]))[0]


async def _with_history(session: AsyncSession, rows: list[ProviderWebhook]) -> list[DeliveryHistory]:
    ids = [row.id for row in rows]
    attempts: dict[str, list[AttemptRead]] = {i: [] for i in ids}
    query = select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids)).order_by(WebhookAttempt.id)
    for attempt in await session.scalars(query):
        attempts[attempt.delivery_id].append(AttemptRead.model_validate(attempt))
    return [DeliveryHistory(**DeliveryRead.model_validate(row).model_dump(), history=attempts[row.id]) for row in rows]


async def provider_deliveries(
    session: AsyncSession, *, provider_id: str, status: str | None = None, limit: int = 100
) -> list[DeliveryHistory]:
    """A provider's deliveries, newest first, each with every attempt."""
    query = select(ProviderWebhook).where(ProviderWebhook.provider_id == provider_id)
    if status:
        query = query.where(ProviderWebhook.status == status)
    rows = list(await session.scalars(query.order_by(ProviderWebhook.created_at.desc()).limit(limit)))
    return await _with_history(session, rows)


async def list_dead_letters(
    session: AsyncSession, *, provider_id: str | None = None, before: datetime | None = None, limit: int = 100
) -> list[DeliveryHistory]:
    """Dead-lettered deliveries, newest first (optionally one provider's; `before` pages on)."""
    query = select(ProviderWebhook).where(ProviderWebhook.status == DeliveryStatus.DEAD_LETTERED)
    if provider_id:
        query = query.where(ProviderWebhook.provider_id == provider_id)
    if before:
        query = query.where(ProviderWebhook.finished_at < before)
    rows = list(await session.scalars(query.order_by(ProviderWebhook.finished_at.desc()).limit(limit)))
    return await _with_history(session, rows)


async def replay_dead_letter(
    session: AsyncSession, *, runtime: Runtime, delivery_id: str, requested_by: str = "ops"
) -> dict[str, Any]:
    """Send a dead-lettered delivery again: a new attempt series (a new run), the same webhook-id.

    The delivery's reset and the new run's start (an outbox row) are one transaction: a crash
    or a QStash outage after the commit only delays the start to the watchdog's sweep, and
    nothing leaves the delivery pending without a run.
    """
    row = await get_delivery(session, delivery_id=delivery_id, lock=True)
    if row.status != DeliveryStatus.DEAD_LETTERED:
        raise Conflict(f"delivery {delivery_id} is {row.status}; only dead-lettered deliveries can be replayed")
    row.series += 1
    row.status = DeliveryStatus.PENDING
    row.reason = None
    row.finished_at = None
    run_id = delivery_run_id(row.id, row.series)
    row.workflow_run_id = run_id
    record_event(
        session,
        "webhook.replayed",
        case_id=row.case_id,
        payload={"delivery_id": row.id, "provider_id": row.provider_id, "series": row.series, "by": requested_by},
    )
    series, case_id = row.series, row.case_id
    payload = {"delivery_id": delivery_id, "series": series}
    start = await runtime.start_in(session, WEBHOOK_DELIVERY, payload, run_id=run_id, labels={"case_id": case_id})
    await session.commit()
    await runtime.flush([start])
    return {"delivery_id": delivery_id, "series": series, "workflow_run_id": run_id}
