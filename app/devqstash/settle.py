"""What happens after an attempt: delivered, retried later, or dead (protocol doc 5.2, 5.3).

All of it is written in the one transaction of `settle`, conditional on the claim token:
- 2xx: the message is deleted (its `DELIVERED` event stays).
- otherwise, while retries are left and the answer was not 489 + `Upstash-NonRetryable-Error`:
  pending again, due after `Retry-After` (429/503), else the `Upstash-Retry-Delay` expression,
  else QStash's backoff times `retry_scale`; an abandoned attempt (its deliverer died, see
  `delivery`) is due at once, since the dead attempt's time already served as its backoff;
- otherwise: `failed`, a DLQ entry, and one failure-callback message if one is configured.
- After every attempt that got an HTTP response, a callback message if one is configured.
Callback messages are ordinary persisted messages, configured from the `Upstash-Callback-*`
(`Upstash-Failure-Callback-*`) headers as if they were `Upstash-*`, inheriting the retries of
the source message unless they set their own. If the claim was lost (the message was
cancelled, or another deliverer took it over) nothing is written and no callback is sent.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.devqstash import dlq, events, store
from app.devqstash.attempt import Outcome
from app.devqstash.models import EventState, QStashMessage
from app.devqstash.retry import ExpressionError, default_backoff_s, evaluate_delay_ms
from app.devqstash.spec import parse_spec
from app.devqstash.views import b64, ms, source_header
from app.errors import BadRequest

logger = logging.getLogger(__name__)


class Result(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"
    LOST = "lost"  # the claim was gone: nothing written


@dataclass(frozen=True, slots=True)
class Settled:
    result: Result
    next_due: datetime | None = None  # when the message or a new callback is due
    published: bool = False  # callback messages were created


async def settle(
    session: AsyncSession,
    message: QStashMessage,
    token: str,
    outcome: Outcome,
    *,
    now: datetime,
    retry_scale: float,
) -> Settled:
    """Record the outcome of the attempt `message.retried` made under claim `token`."""
    if outcome.delivered:
        if not await store.settle_delivered(session, message, token, now=now):
            return Settled(Result.LOST)
        return await _with_callbacks(session, message, outcome, Settled(Result.DELIVERED), now=now)
    if message.retried < message.max_retries and not outcome.non_retryable:
        due = now + timedelta(seconds=retry_delay_s(message, outcome, scale=retry_scale))
        if not await store.settle_retry(session, message, token, retried=message.retried + 1, due=due):
            return Settled(Result.LOST)
        await events.record(
            session,
            message_id=message.id,
            state=EventState.RETRY,
            url=message.url,
            now=now,
            retried=message.retried,
            responseStatus=outcome.status,
            error=outcome.error,
            nextDeliveryTime=ms(due),
        )
        return await _with_callbacks(session, message, outcome, Settled(Result.RETRY, due), now=now)
    return await _fail(session, message, token, outcome, now=now)


def retry_delay_s(message: QStashMessage, outcome: Outcome, *, scale: float) -> float:
    """Seconds until the next attempt after the attempt `message.retried` failed."""
    if outcome.abandoned:
        return 0.0
    retry_after = outcome.retry_after_s()
    if retry_after is not None:
        return retry_after
    if message.retry_delay:
        try:
            return evaluate_delay_ms(message.retry_delay, message.retried) / 1000
        except ExpressionError as exc:
            logger.warning("message %s: %s; using the default backoff", message.id, exc)
    return default_backoff_s(message.retried + 1, scale=scale)


async def _fail(
    session: AsyncSession, message: QStashMessage, token: str, outcome: Outcome, *, now: datetime
) -> Settled:
    if not await store.settle_failed(session, message, token, retried=message.retried):
        return Settled(Result.LOST)
    dlq_id = dlq.add(
        session,
        message,
        now=now,
        status=outcome.status or 0,
        headers=outcome.headers,
        body=outcome.body,
        error=outcome.error,
    )
    await events.record(
        session,
        message_id=message.id,
        state=EventState.FAILED,
        url=message.url,
        now=now,
        retried=message.retried,
        responseStatus=outcome.status,
        error=outcome.error,
        dlqId=dlq_id,
    )
    logger.warning(
        "message %s to %s failed for good after %d retries (%s); DLQ entry %s",
        message.id,
        message.url,
        message.retried,
        outcome.status or outcome.error,
        dlq_id,
    )
    settled = await _with_callbacks(session, message, outcome, Settled(Result.FAILED), now=now)
    if message.failure_callback is None:
        return settled
    body = {**callback_body(message, outcome), "dlqId": dlq_id}
    due = await _publish_callback(
        session, message, message.failure_callback, message.failure_callback_headers, body, now=now
    )
    return Settled(Result.FAILED, _earliest(settled.next_due, due), published=settled.published or due is not None)


async def _with_callbacks(
    session: AsyncSession, message: QStashMessage, outcome: Outcome, settled: Settled, *, now: datetime
) -> Settled:
    """Publish the per-attempt callback, if configured and the attempt got a response."""
    if message.callback is None or outcome.status is None:
        return settled
    body = callback_body(message, outcome)
    due = await _publish_callback(session, message, message.callback, message.callback_headers, body, now=now)
    return Settled(settled.result, _earliest(settled.next_due, due), published=due is not None)


def callback_body(message: QStashMessage, outcome: Outcome) -> dict[str, Any]:
    """The JSON QStash posts to a callback (protocol doc 5.3)."""
    body: dict[str, Any] = {
        "status": outcome.status or 0,
        "header": outcome.headers,
        "body": b64(outcome.body),
        "retried": message.retried,
        "maxRetries": message.max_retries,
        "sourceMessageId": message.id,
        "url": message.url,
        "method": message.method,
        "sourceHeader": source_header(message),
        "sourceBody": b64(message.body),
        "notBefore": ms(message.not_before),
        "createdAt": ms(message.created_at),
        "callerIP": message.caller_ip or "",
    }
    optional = {"scheduleId": message.schedule_id, "queueName": message.queue_name, "error": outcome.error}
    body.update({key: value for key, value in optional.items() if value is not None})
    return body


async def _publish_callback(
    session: AsyncSession,
    message: QStashMessage,
    url: str,
    config: dict[str, str],
    body: dict[str, Any],
    *,
    now: datetime,
) -> datetime | None:
    """Store one callback message; returns when it is due, None if it could not be made."""
    headers = [("Content-Type", "application/json"), *config.items()]
    data = json.dumps(body, separators=(",", ":")).encode()
    try:
        spec = parse_spec(url, headers, data, default_retries=message.max_retries, now=now, caller_ip=message.caller_ip)
    except BadRequest as exc:  # checked at publish; only a changed server could get here
        logger.error("callback of message %s to %s not sent: %s", message.id, url, exc)
        return None
    await store.publish(session, spec, now=now)
    return spec.not_before or now


def _earliest(first: datetime | None, second: datetime | None) -> datetime | None:
    candidates = [moment for moment in (first, second) if moment is not None]
    return min(candidates) if candidates else None
