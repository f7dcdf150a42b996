"""Exchange-rate fetches (good or failed, with the reason) and the rates of each good one."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, utcnow


class RateFetch(Base):
    """One refresh: `ok` with its rates, or `failed` with `reason`. Unique per run (`run_id`)."""

    __tablename__ = "exchange_rate_fetches"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(10))
    base: Mapped[str] = mapped_column(String(3))
    source_url: Mapped[str] = mapped_column(String(500))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class ExchangeRate(Base):
    """How many units of `currency` one unit of the fetch's base buys."""

    __tablename__ = "exchange_rates"

    fetch_id: Mapped[int] = mapped_column(ForeignKey("exchange_rate_fetches.id", ondelete="CASCADE"), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    rate: Mapped[float] = mapped_column(Float)
