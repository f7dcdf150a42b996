"""`OpsState`: the ops domain's long-lived objects, built once per app (`build_ops`)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.ops.alerts import AlertWatcher
from app.ops.deadletters import DeadLetters, QStashDeadLetters
from app.ops.metrics import OpsHooks, OpsMetrics
from app.ops.tracing import LangfuseTracer
from app.ops.usage import CountingQStash, Quota, UsageRecorder
from app.runtime.background import BackgroundLoop


@dataclass
class OpsState:
    recorder: UsageRecorder
    qstash: CountingQStash
    dead_letters: DeadLetters
    metrics: OpsMetrics
    hooks: OpsHooks
    flusher: BackgroundLoop
    alerts: AlertWatcher
    alert_loop: BackgroundLoop
    alerts_poll_s: float
    tracer: LangfuseTracer | None = None
    trace_loop: BackgroundLoop | None = None
    sse_clients: int = 0  # /ops/alerts streams open

    async def start(self) -> None:
        self.flusher.start()
        self.alert_loop.start()
        if self.trace_loop is not None:
            self.trace_loop.start()

    async def stop(self) -> None:
        await self.alert_loop.stop()
        await self.flusher.stop()
        await self.recorder.flush()
        if self.trace_loop is not None and self.tracer is not None:
            await self.trace_loop.stop()
            await self.tracer.flush()

    async def dead_letter_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for name, source in self.dead_letters.sources.items():
            counts[name] = len((await source.list(cursor=None, count=100)).items)
        return counts


def build_ops(
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    *,
    qstash_url: str,
    qstash_token: str,
    quota: Quota,
    flush_s: float,
    alerts_poll_s: float = 2.0,
    alerts_dlq_poll_s: float = 30.0,
    alert_webhook_url: str = "",
    alert_webhook_secret: str = "",
    langfuse: tuple[str, str, str] | None = None,
    llm_prices: tuple[float, float] = (0.0, 0.0),
) -> OpsState:
    """`langfuse` is `(host, public key, secret key)`, or None for no tracing at all."""
    """The usage-counting QStash client (the runtime's transport), dead letters, metrics, hooks."""
    metrics = OpsMetrics()
    recorder = UsageRecorder(sessions, quota, on_message=lambda workflow, n: metrics.published.labels(workflow).inc(n))
    qstash = CountingQStash(qstash_url, qstash_token, http, recorder)
    tracer = trace_loop = None
    if langfuse is not None:
        host, public_key, secret_key = langfuse
        tracer = LangfuseTracer(http, host=host, public_key=public_key, secret_key=secret_key, prices=llm_prices)
        trace_loop = BackgroundLoop("langfuse-flush", tracer.flush, pause_s=lambda: 1.0)
    hooks = OpsHooks(metrics, recorder.count_inline_step, tracer.step_attempted if tracer else None)
    flusher = BackgroundLoop("ops-usage-flush", recorder.flush, pause_s=lambda: flush_s)
    dead_letters = DeadLetters([QStashDeadLetters(qstash)])
    alerts = AlertWatcher(
        sessions,
        dead_letters,
        http,
        webhook_url=alert_webhook_url,
        webhook_secret=alert_webhook_secret,
        dlq_poll_s=alerts_dlq_poll_s,
    )
    alert_loop = BackgroundLoop("ops-alerts", alerts.round, pause_s=lambda: alerts_poll_s)
    return OpsState(
        recorder, qstash, dead_letters, metrics, hooks, flusher, alerts, alert_loop, alerts_poll_s, tracer, trace_loop
    )
