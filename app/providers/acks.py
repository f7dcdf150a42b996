"""Acknowledgements: a hospital confirms it has processed a delivery (`POST /webhooks/ack/{id}`).

Providers with `ack_required` get, in every delivery's payload, the URL to acknowledge at and a
token: HMAC-SHA256 of the delivery ID under the service's `AUTH_SECRET`, so only whoever received
the (signed) delivery can acknowledge it. The webhook-delivery run waits for the acknowledgement
(`ctx.wait_for_event` on `ack_event_id`) and escalates when it does not come in time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.errors import Unauthorized
from app.providers.deliveries import get_delivery
from app.providers.models import ProviderWebhook
from app.runtime.events import record_event
from app.runtime.runtime import Runtime


def ack_event_id(delivery_id: str) -> str:
    return f"webhook-ack:{delivery_id}"


def ack_token(secret: str, delivery_id: str) -> str:
    digest = hmac.new(secret.encode(), f"ack:{delivery_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def verify_ack_token(secret: str, delivery_id: str, token: str) -> None:
    if not hmac.compare_digest(ack_token(secret, delivery_id).encode(), token.encode()):
        raise Unauthorized("the acknowledgement token does not match this delivery")


def record_ack(session: AsyncSession, row: ProviderWebhook, *, acknowledged: bool) -> None:
    """The outcome of the wait: `webhook.acknowledged`, or the escalation `webhook.ack_overdue`."""
    payload = {"delivery_id": row.id, "provider_id": row.provider_id, "forwarding_id": row.forwarding_id}
    if acknowledged:
        row.acknowledged_at = row.acknowledged_at or utcnow()
        record_event(session, "webhook.acknowledged", case_id=row.case_id, payload=payload)
    else:
        record_event(session, "webhook.ack_overdue", case_id=row.case_id, payload=payload)


async def acknowledge(session: AsyncSession, *, runtime: Runtime, delivery_id: str, token: str, secret: str) -> None:
    """Wake the delivery's wait if `token` acknowledges it (404 / 401 otherwise).

    Ends the session's transaction first: `notify` writes in a transaction of its own.
    """
    await get_delivery(session, delivery_id=delivery_id)
    verify_ack_token(secret, delivery_id, token)
    await session.commit()
    await runtime.notify(ack_event_id(delivery_id), {"acknowledged": True})
