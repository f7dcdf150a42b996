"""Cases (a patient seeking one procedure) and their requirement checklist."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, JSONType, UTCDateTime, utcnow


class RequirementStatus(StrEnum):
    SATISFIED = "satisfied"
    MISSING = "missing"


class Case(Base):
    __tablename__ = "cases"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    procedure: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CaseRequirement(Base):
    """One pre-operative requirement of the case's procedure and whether documents meet it."""

    __tablename__ = "case_requirements"
    __table_args__ = (UniqueConstraint("case_id", "requirement_code"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    requirement_code: Mapped[str] = mapped_column(String(80))
    requirement: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(20), default=RequirementStatus.MISSING)
    evidence: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
