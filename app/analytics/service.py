"""The `analytics_daily` counts: refreshed by the analytics-refresh job, read by ops.

The migration (0009) makes `analytics_daily`: on Postgres a materialized view with a unique
index, refreshed with `REFRESH MATERIALIZED VIEW CONCURRENTLY` (readers never wait for it);
on SQLite a table rebuilt from `SOURCES` in one transaction (readers see the old or the new
counts, never a mix). Each source is one `SELECT day, metric, key, count` over one table: adding
forwardings by outcome is one more entry here and one more `UNION ALL` branch in the view.
This module is the one place that knows the dialect difference.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from sqlalchemy import column, select, table, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.analytics.schemas import AnalyticsDay

ANALYTICS = table("analytics_daily", column("day"), column("metric"), column("key"), column("count"))

# SQLite keeps UTC timestamps as text: date(created_at) is the UTC day.
SOURCES = (
    "SELECT date(created_at) AS day, 'cases' AS metric, '' AS key, count(*) AS count FROM cases GROUP BY 1",
    "SELECT date(created_at), 'documents', status, count(*) FROM documents GROUP BY 1, 3",
)


async def refresh(session: AsyncSession) -> None:
    """Recompute the counts (the caller commits)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("REFRESH MATERIALIZED VIEW CONCURRENTLY analytics_daily"))
        return
    await session.execute(text("DELETE FROM analytics_daily"))
    union = " UNION ALL ".join(SOURCES)
    await session.execute(text(f"INSERT INTO analytics_daily (day, metric, key, count) {union}"))  # noqa: S608


async def read_days(
    session: AsyncSession, *, since: date | None = None, until: date | None = None
) -> list[AnalyticsDay]:
    """The counts per day, oldest first, between `since` and `until` (inclusive)."""
    rows = (await session.execute(select(ANALYTICS))).all()
    days: dict[str, AnalyticsDay] = {}
    grouped: defaultdict[str, list[tuple[str, str, int]]] = defaultdict(list)
    for day, metric, key, count in rows:
        grouped[str(day)[:10]].append((metric, key, int(count)))
    for day in sorted(grouped):
        moment = date.fromisoformat(day)
        if (since and moment < since) or (until and moment > until):
            continue
        entry = AnalyticsDay(day=moment)
        for metric, key, count in grouped[day]:
            if metric == "cases":
                entry.cases += count
            elif metric == "documents":
                entry.documents[key] = entry.documents.get(key, 0) + count
            elif metric == "forwardings":
                entry.forwardings[key] = entry.forwardings.get(key, 0) + count
        days[day] = entry
    return list(days.values())
