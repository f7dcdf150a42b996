"""Exchange-rate refresh stage: keep the fetched rates, or record why they were refused."""

from __future__ import annotations

from typing import Any

from app.db import transaction
from app.rates import service as rates
from app.workflows.deps import PipelineDeps


async def store(
    deps: PipelineDeps, run_id: str, url: str, answer: dict[str, Any] | None, problem: str | None
) -> dict[str, Any]:
    """`store-rates`: the answer's rates with their fetch time, else the reason (old rates stay)."""
    settings = deps.settings
    base, currencies = settings.rates_base.upper(), settings.rates_currency_codes
    reason = problem
    parsed: dict[str, float] = {}
    if answer is not None:
        try:
            parsed = rates.parse_answer(answer["status"], answer["body"], base=base, currencies=currencies)
        except rates.RatesRejected as exc:
            reason = str(exc)
    async with transaction(deps.sessions) as session:
        if reason is None:
            fetch = await rates.store_rates(session, run_id=run_id, base=base, source_url=url, rates=parsed)
        else:
            fetch = await rates.record_failure(session, run_id=run_id, base=base, source_url=url, reason=reason)
        return {"status": fetch.status, "reason": fetch.reason, "fetched_at": fetch.fetched_at.isoformat()}
