"""Forwardings: one case sent to a set of providers, and the packet that was built for them.

The packet (EHR bundle, on-site tests notice) is stored here and referenced by the forwarding's
ID: it never travels in a QStash message or a step result.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, JSONType, UTCDateTime, utcnow


class ForwardingStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"


class Forwarding(Base):
    __tablename__ = "forwardings"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    provider_ids: Mapped[list[str]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(20), index=True, default=ForwardingStatus.RUNNING)
    requested_by: Mapped[str] = mapped_column(String(80))
    workflow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    packet: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    failure_reason: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
