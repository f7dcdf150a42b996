"""The scheduled jobs (DESIGN 4, "scheduled-jobs"): one workflow per job, started by cron ticks.

One workflow per job, not one workflow taking the job as payload: each job has its own steps,
so a change to one job's steps can never fail running runs of another with
`NonDeterminismError`; ops filter runs by workflow name; and each job has its own retries and
`on_failure`. The schedules (`app.workflows.schedules.SCHEDULES`) name these workflows, and a
tick never starts a second run of a job while one is unfinished (`RunStore.start_exclusive`).

Every job pages through its work in steps of safe size, each step committed before the next
(never one long transaction, never a request that times out), and resumes at the step after
the last one committed. Step names carry the page number: never rename or reorder them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from app.runtime.context import WorkflowContext
from app.runtime.errors import StepFailedError
from app.runtime.registry import workflow
from app.workflows.deps import PipelineDeps
from app.workflows.scheduled_jobs import analytics, cleanup, notices, rates


class JobInput(BaseModel):
    """Schedules send `{}`; nothing is needed (the jobs read their settings)."""

    model_config = ConfigDict(extra="ignore")


async def _pages(ctx: WorkflowContext, prefix: str, count: str, page_fn: Any, *args: Any) -> int:
    """Steps `<prefix>-1..N`, each `page_fn(*args, last)` answering `{last, more, <count>}`,
    until a page says there is no more; the sum of `count`. Names are stable: never change them."""
    last, page, more, total = "", 0, True, 0
    while more:
        page += 1
        done = await ctx.run(f"{prefix}-{page}", page_fn, *args, last)
        last, more, total = done["last"], done["more"], total + done[count]
    return total


@workflow("stale-session-cleanup")
async def stale_session_cleanup(ctx: WorkflowContext, payload: JobInput) -> dict[str, Any]:
    deps: PipelineDeps = ctx.deps
    plan = await ctx.run("plan", cleanup.plan, deps)
    cursor, batch, more = cleanup.START, 0, True
    totals = {"documents": 0, "cases": 0}
    while more:
        batch += 1
        done = await ctx.run(
            f"batch-{batch}", cleanup.run_batch, deps, ctx.run_id, batch, plan["before"], cursor, plan["batch_size"]
        )
        cursor, more = done["cursor"], done["more"]
        totals = {key: totals[key] + done[key] for key in totals}
    return {"batches": batch, **totals}


@workflow("exchange-rate-refresh")
async def exchange_rate_refresh(ctx: WorkflowContext, payload: JobInput) -> dict[str, Any]:
    deps: PipelineDeps = ctx.deps
    url = deps.settings.rates_source_url
    if not url:
        return await ctx.run("store-rates", rates.store, deps, ctx.run_id, "", None, "RATES_URL is not set")
    try:  # a non-2xx answer comes back as an answer; no answer at all fails the call step
        answer = await ctx.call("fetch-rates", url, method="GET", retries=3, timeout=30)
    except StepFailedError as exc:
        return await ctx.run("store-rates", rates.store, deps, ctx.run_id, url, None, exc.error)
    return await ctx.run("store-rates", rates.store, deps, ctx.run_id, url, answer, None)


@workflow("intake-reminders")
async def intake_reminders(ctx: WorkflowContext, payload: JobInput) -> dict[str, Any]:
    deps: PipelineDeps = ctx.deps
    window = await ctx.run("window", notices.reminder_window, deps)
    return {"reminded": await _pages(ctx, "remind", "reminded", notices.remind_page, deps, window)}


@workflow("consent-expiry-warnings")
async def consent_expiry_warnings(ctx: WorkflowContext, payload: JobInput) -> dict[str, Any]:
    deps: PipelineDeps = ctx.deps
    window = await ctx.run("window", notices.warning_window, deps)
    return {"warned": await _pages(ctx, "warn", "warned", notices.warn_page, deps, window)}


@workflow("notification-digest")
async def notification_digest(ctx: WorkflowContext, payload: JobInput) -> dict[str, Any]:
    deps: PipelineDeps = ctx.deps
    digests = await _pages(ctx, "digest", "digests", notices.digest_page, deps, ctx.run_id)
    page, more, sent = 0, True, 0
    while more:
        page += 1
        done = await ctx.run(f"send-{page}", notices.send_page, deps)
        more, sent = done["more"], sent + done["sent"]
    return {"digests": digests, "sent": sent}


@workflow("analytics-refresh")
async def analytics_refresh(ctx: WorkflowContext, payload: JobInput) -> dict[str, Any]:
    return await ctx.run("refresh", analytics.refresh, ctx.deps)


JOB_WORKFLOWS = [
    stale_session_cleanup,
    exchange_rate_refresh,
    intake_reminders,
    consent_expiry_warnings,
    notification_digest,
    analytics_refresh,
]
