"""Analytics-refresh stage."""

from __future__ import annotations

from typing import Any

from app.analytics import service as analytics
from app.db import transaction, utcnow
from app.workflows.deps import PipelineDeps


async def refresh(deps: PipelineDeps) -> dict[str, Any]:
    """`refresh`: recompute `analytics_daily` (a concurrent refresh of the view on Postgres)."""
    async with transaction(deps.sessions) as session:
        await analytics.refresh(session)
    return {"refreshed_at": utcnow().isoformat()}
