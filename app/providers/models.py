"""Providers (hospitals), their webhook deliveries and each delivery's attempts.

- `providers`: name, webhook URL, the Standard Webhooks secret (and the previous one while its
  grace period lasts), and the circuit breaker's state.
- `provider_webhooks`: one row per (forwarding, provider): the delivery's state. Its `id` is the
  `webhook-id` every attempt and every replay of the delivery carries.
- `provider_webhook_attempts`: one row per attempt (the provider's delivery history), unique on
  `(delivery_id, series, attempt)` so a step re-run after a crash never records an attempt twice.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, JSONType, UTCDateTime, utcnow


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD_LETTERED = "dead_lettered"
    SKIPPED_NO_CONSENT = "skipped_no_consent"


TERMINAL_DELIVERY_STATUSES = frozenset(
    {DeliveryStatus.DELIVERED, DeliveryStatus.DEAD_LETTERED, DeliveryStatus.SKIPPED_NO_CONSENT}
)


class CircuitState(StrEnum):
    CLOSED = "closed"  # deliveries go out
    OPEN = "open"  # deliveries wait until the cool-down ends and one probe succeeds
    HALF_OPEN = "half_open"  # one delivery (the probe) is being tried


class Provider(Base):
    __tablename__ = "providers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    webhook_url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(200))
    previous_secret: Mapped[str | None] = mapped_column(String(200), nullable=True)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ack_required: Mapped[bool] = mapped_column(Boolean, default=False)
    circuit_state: Mapped[str] = mapped_column(String(20), default=CircuitState.CLOSED)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    circuit_opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    probe_delivery_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    probe_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    secret_rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ProviderWebhook(Base):
    __tablename__ = "provider_webhooks"
    __table_args__ = (UniqueConstraint("forwarding_id", "provider_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # the webhook-id
    provider_id: Mapped[str] = mapped_column(ForeignKey("providers.id", ondelete="CASCADE"), index=True)
    forwarding_id: Mapped[str] = mapped_column(String(40), index=True)
    case_id: Mapped[str] = mapped_column(String(40), index=True)
    status: Mapped[str] = mapped_column(String(30), index=True, default=DeliveryStatus.PENDING)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    series: Mapped[int] = mapped_column(Integer, default=0)  # 0 = first series; each replay adds 1
    workflow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WebhookAttempt(Base):
    __tablename__ = "provider_webhook_attempts"
    __table_args__ = (UniqueConstraint("delivery_id", "series", "attempt"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("provider_webhooks.id", ondelete="CASCADE"), index=True)
    provider_id: Mapped[str] = mapped_column(String(40), index=True)
    series: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(20))  # delivered | retry | dead_lettered | no_consent | refused
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    response_excerpt: Mapped[str | None] = mapped_column(Text, nullable=True)
    retry_in_s: Mapped[float | None] = mapped_column(nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
