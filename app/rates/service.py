"""Exchange rates: check a rates answer, keep good rates with their fetch time, read the latest.

A rates source answers JSON `{"base": "USD", "rates": {"EUR": 0.92, ...}}` (the shape of
frankfurter.app and exchangerate.host). `parse_answer` accepts it only when the base is ours
and every currency we quote in has a positive finite rate; anything else is a `RatesRejected`
with the reason, which `record_failure` keeps while the last good rates stay in use.
Both writes are unique per run (`run_id`), so a retried step never stores twice.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.errors import CurawayError, NotFound
from app.rates.models import ExchangeRate, RateFetch

OK, FAILED = "ok", "failed"


class RatesRejected(CurawayError):
    """The rates source's answer is unusable; the message says why."""


@dataclass(frozen=True, slots=True)
class Rates:
    base: str
    fetched_at: datetime
    rates: dict[str, float]


def parse_answer(status: int, body: str, *, base: str, currencies: tuple[str, ...]) -> dict[str, float]:
    """The quoted currencies' rates from a source's answer, or `RatesRejected` saying why."""
    if not 200 <= status < 300:
        raise RatesRejected(f"the rates source answered HTTP {status}")
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise RatesRejected(f"the rates source's answer is not JSON: {body[:80]!r}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("rates"), dict):
        raise RatesRejected("the rates source's answer has no 'rates' object")
    if str(data.get("base", "")).upper() != base:
        raise RatesRejected(f"the rates source quotes base {data.get('base')!r}, expected {base!r}")
    rates: dict[str, float] = {}
    for currency in currencies:
        value = data["rates"].get(currency)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise RatesRejected(f"the rates source gives no usable rate for {currency} ({value!r})")
        rates[currency] = float(value)
    return rates


async def _existing(session: AsyncSession, run_id: str) -> RateFetch | None:
    return await session.scalar(select(RateFetch).where(RateFetch.run_id == run_id))


async def store_rates(
    session: AsyncSession, *, run_id: str, base: str, source_url: str, rates: dict[str, float]
) -> RateFetch:
    """Keep this run's good rates, fetched now (once per run)."""
    if (existing := await _existing(session, run_id)) is not None:
        return existing
    fetch = RateFetch(run_id=run_id, status=OK, base=base, source_url=source_url[:500], fetched_at=utcnow())
    session.add(fetch)
    await session.flush()
    session.add_all(ExchangeRate(fetch_id=fetch.id, currency=c, rate=r) for c, r in sorted(rates.items()))
    await session.flush()
    return fetch


async def record_failure(session: AsyncSession, *, run_id: str, base: str, source_url: str, reason: str) -> RateFetch:
    """Record why this run's fetch was refused (once per run); the last good rates stay."""
    if (existing := await _existing(session, run_id)) is not None:
        return existing
    fetch = RateFetch(run_id=run_id, status=FAILED, base=base, source_url=source_url[:500], reason=reason)
    session.add(fetch)
    await session.flush()
    return fetch


async def latest_rates(session: AsyncSession) -> Rates:
    """The rates of the most recent good fetch; `NotFound` before the first one."""
    fetch = await session.scalar(
        select(RateFetch).where(RateFetch.status == OK).order_by(RateFetch.fetched_at.desc(), RateFetch.id.desc())
    )
    if fetch is None:
        raise NotFound("no exchange rates yet: the exchange-rate-refresh job has not stored any")
    rows = await session.scalars(select(ExchangeRate).where(ExchangeRate.fetch_id == fetch.id))
    return Rates(fetch.base, fetch.fetched_at, {row.currency: row.rate for row in rows})


async def last_failure(session: AsyncSession) -> RateFetch | None:
    """The most recent fetch if it failed (the current rates are then older than it)."""
    latest = await session.scalar(select(RateFetch).order_by(RateFetch.fetched_at.desc(), RateFetch.id.desc()))
    return latest if latest is not None and latest.status == FAILED else None


def convert(rates: Rates, amount: float, source: str, target: str) -> float:
    """`amount` of `source` in `target`, through the base currency."""
    table: dict[str, Any] = {rates.base: 1.0, **rates.rates}
    for code in (source, target):
        if code not in table:
            raise NotFound(f"no rate for {code}; quoted currencies: {', '.join(sorted(table))}")
    return round(amount / table[source] * table[target], 2)
