"""Tables of the embedded QStash server, all prefixed `qstash_`.

- `qstash_messages`: every message that is still to be delivered (`pending`), being
  delivered (`delivering`, claimed until `claimed_until` by the holder of `claim_token`, a
  short lease its live holder keeps renewing: see `delivery`), or
  dead (`failed`, kept while its DLQ entry exists). A delivered or cancelled message is
  deleted at once; its trail stays in `qstash_events`.
- `qstash_dlq`: one row per dead message, with the last response; deleting the message
  deletes its entry (`ON DELETE CASCADE`).
- `qstash_dedup`: deduplication keys with the message they map to, valid until `expires_at`
  (10 minutes after the first publish).
- `qstash_schedules`: cron schedules (`scd_...` or a chosen ID): the cron expression as given,
  the configuration of the messages each tick publishes, `is_paused`, and `next_fire_at`, which
  the cron loop advances with a conditional UPDATE before it publishes a tick's message.
- `qstash_events`: the message log served at `/v2/events`; one `CREATED` row per message
  records its destination and creation time (usage per workflow per day), later rows record
  retries, deliveries, failures and cancellations. Pruned after `EVENT_RETENTION`.

The delivery configuration both `qstash_messages` and `qstash_schedules` carry (method, body,
headers, callbacks, retries, ...) is declared once, in the `DeliveryConfig` mixin.

Invariants: a message row is written in the transaction that answers its publish; a
`delivering` row is owned by exactly one `claim_token`, and every state change after the
claim is conditional on that token.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, JSONType, UTCDateTime

BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class MessageState(StrEnum):
    PENDING = "pending"
    DELIVERING = "delivering"
    FAILED = "failed"


ACTIVE_STATES = frozenset({MessageState.PENDING, MessageState.DELIVERING})


class EventState(StrEnum):
    """The QStash log states this server writes."""

    CREATED = "CREATED"
    RETRY = "RETRY"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"


class DeliveryConfig:
    """How a message is delivered: the columns a message and a schedule (its template) share.

    A mixin of plain columns, so each table keeps exactly the columns its migration created;
    only the destination column is named differently (`url`, `destination`).
    """

    queue_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    method: Mapped[str] = mapped_column(String(10))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    content_type: Mapped[str | None] = mapped_column(String(255), nullable=True)
    forward_headers: Mapped[dict[str, str]] = mapped_column(JSONType)  # delivered names
    control_headers: Mapped[dict[str, str]] = mapped_column(JSONType)  # other Upstash-*, kept
    callback: Mapped[str | None] = mapped_column(Text, nullable=True)
    callback_headers: Mapped[dict[str, str]] = mapped_column(JSONType)  # as Upstash-X
    failure_callback: Mapped[str | None] = mapped_column(Text, nullable=True)
    failure_callback_headers: Mapped[dict[str, str]] = mapped_column(JSONType)  # as Upstash-X
    max_retries: Mapped[int] = mapped_column(Integer)
    retry_delay: Mapped[str | None] = mapped_column(Text, nullable=True)
    timeout_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    caller_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class QStashMessage(DeliveryConfig, Base):
    __tablename__ = "qstash_messages"
    __table_args__ = (Index("ix_qstash_messages_state_due", "state", "next_delivery_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    schedule_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    state: Mapped[str] = mapped_column(String(16), default=MessageState.PENDING)
    retried: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    next_delivery_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claim_token: Mapped[str | None] = mapped_column(String(40), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class QStashDlqEntry(Base):
    __tablename__ = "qstash_dlq"

    dlq_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    message_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("qstash_messages.id", ondelete="CASCADE"), index=True
    )
    response_status: Mapped[int] = mapped_column(Integer)
    response_headers: Mapped[dict[str, list[str]]] = mapped_column(JSONType)
    response_body: Mapped[bytes] = mapped_column(LargeBinary)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class QStashDedup(Base):
    __tablename__ = "qstash_dedup"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class QStashEvent(Base):
    __tablename__ = "qstash_events"
    __table_args__ = (Index("ix_qstash_events_message_id_id", "message_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(20))
    url: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class QStashSchedule(DeliveryConfig, Base):
    __tablename__ = "qstash_schedules"
    __table_args__ = (Index("ix_qstash_schedules_is_paused_next_fire_at", "is_paused", "next_fire_at"),)

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    destination: Mapped[str] = mapped_column(Text)
    cron: Mapped[str] = mapped_column(String(300))  # as given, with its CRON_TZ= prefix if any
    delay_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    is_paused: Mapped[bool] = mapped_column(Boolean, default=False)
    next_fire_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_fire_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_message_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
