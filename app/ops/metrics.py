"""Prometheus metrics (`GET /metrics`), one registry per app.

Counters and the histogram are fed by the runtime's hooks (`OpsHooks`) and the publish
counter; gauges that describe state (runs by status, dead letters, SSE clients) are read when
scraped.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.runtime.hooks import RuntimeHooks, StepAttempt
from app.runtime.models import WorkflowRun

log = logging.getLogger(__name__)

__all__ = ["CONTENT_TYPE_LATEST", "OpsHooks", "OpsMetrics"]

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class OpsMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.steps = Counter(
            "curaway_workflow_steps",
            "Step attempts by workflow, step and outcome",
            ["workflow", "step", "outcome"],
            registry=r,
        )
        self.step_duration = Histogram(
            "curaway_workflow_step_duration_seconds",
            "Duration of step attempts",
            ["workflow", "step"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.runs = Gauge("curaway_workflow_runs", "Runs by workflow and status", ["workflow", "status"], registry=r)
        self.published = Counter(
            "curaway_qstash_messages_published", "QStash messages published by workflow", ["workflow"], registry=r
        )
        self.dead_letters = Gauge("curaway_dead_letters", "Dead letters held, by source", ["source"], registry=r)
        self.sse_clients = Gauge("curaway_sse_clients", "Server-sent event streams open", registry=r)

    async def render(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        dead_letters: Callable[[], Awaitable[dict[str, int]]],
        sse_clients: int,
    ) -> bytes:
        """Refresh the state gauges and return the text exposition."""
        async with sessions() as session:
            rows = await session.execute(
                select(WorkflowRun.workflow, WorkflowRun.status, func.count()).group_by(
                    WorkflowRun.workflow, WorkflowRun.status
                )
            )
            self.runs.clear()
            for workflow, status, count in rows:
                self.runs.labels(workflow, status).set(count)
        try:
            for source, count in (await dead_letters()).items():
                self.dead_letters.labels(source).set(count)
        except Exception as exc:  # QStash unreachable: keep the last value, say so in the log
            log.warning("dead letters not counted for /metrics: %s", exc)
        self.sse_clients.set(sse_clients)
        return generate_latest(self.registry)


class OpsHooks(RuntimeHooks):
    """The runtime's observer: step metrics, the inline-continuation count of usage, tracing."""

    def __init__(
        self,
        metrics: OpsMetrics,
        count_inline_step: Callable[[str], None],
        tracer: Callable[[StepAttempt], None] | None = None,
    ) -> None:
        self.metrics = metrics
        self.count_inline_step = count_inline_step
        self.tracer = tracer  # Langfuse (tracing.py), only when its keys are set

    def step_attempted(self, attempt: StepAttempt) -> None:
        self.metrics.steps.labels(attempt.workflow, attempt.step, attempt.outcome).inc()
        self.metrics.step_duration.labels(attempt.workflow, attempt.step).observe(attempt.duration_s)
        if attempt.inline:
            self.count_inline_step(attempt.workflow)
        if self.tracer is not None:
            self.tracer(attempt)
