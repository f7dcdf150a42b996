"""`GET /ops/analytics` (ops): per-day counts as of the last analytics refresh."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter

from app.analytics import service
from app.analytics.schemas import AnalyticsRead
from app.auth.dependencies import OpsDep
from app.dependencies import SessionDep
from app.errors import BadRequest, error_responses

router = APIRouter(tags=["ops"], responses=error_responses(400, 401, 403))


@router.get("/ops/analytics")
async def read_analytics(
    session: SessionDep, _: OpsDep, since: date | None = None, until: date | None = None
) -> AnalyticsRead:
    """Cases, documents by status (and forwardings by outcome) per UTC day, oldest first.

    The counts are those of the last run of the hourly analytics-refresh job.
    """
    if since and until and since > until:
        raise BadRequest(f"since ({since}) is after until ({until})")
    return AnalyticsRead(days=await service.read_days(session, since=since, until=until))
