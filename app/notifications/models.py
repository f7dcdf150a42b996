"""The `notifications` table: one row per message meant for a patient.

A row is unique by `idempotency_key` (e.g. `intake-reminder:<case_id>`), so a step that is
replayed, or a job that runs twice, finds the row and sends nothing new.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, JSONType, UTCDateTime, utcnow


class NotificationKind(StrEnum):
    INTAKE_REMINDER = "intake_reminder"
    DIGEST = "digest"


class NotificationState(StrEnum):
    PENDING = "pending"  # shown in-app; waits for the patient's next digest
    DIGESTED = "digested"  # included in the digest `digest_id`
    OUTBOX = "outbox"  # a digest that the configured mail/SMS sender has still to take
    SENT = "sent"  # delivered (in-app, and through the sender when one is configured)


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_state_patient_id", "state", "patient_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    case_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    state: Mapped[str] = mapped_column(String(20), default=NotificationState.PENDING)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    digest_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
