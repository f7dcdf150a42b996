"""Langfuse tracing over its public ingestion API, only when keys are set.

One trace per workflow run, whose ID is derived from the run ID (`trace_id(run_id)`: 32 hex
digits of SHA-256, so every process and every retry of a run lands on the same trace), and
one span per step attempt (name = step, with attempt, outcome and whether it ran inline; a
failed attempt is level ERROR), and a generation per LLM call under the span of the attempt
that made it (model, input/output tokens, latency, and cost when `LLM_PRICE_*` are set).
Events are queued in memory by the runtime's step hook and the LLM client, and POSTed in
batches to `LANGFUSE_HOST/api/public/ingestion` (basic auth with the public and secret keys)
by a background loop; a failed batch is logged once and dropped, never retried in
the request path.

Without `LANGFUSE_PUBLIC_KEY` and `LANGFUSE_SECRET_KEY` no tracer is built: nothing is queued,
sent or logged. (The Langfuse SDK is not used: it warns on every call without keys and its
flush blocks for its timeout on an unreachable host.)
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from app.extraction.llm import LLMCall
from app.logging import attempt_var, step_var, workflow_id_var
from app.runtime.hooks import StepAttempt

log = logging.getLogger(__name__)

MAX_QUEUE = 10_000
BATCH = 200


def trace_id(run_id: str) -> str:
    """The Langfuse trace ID of a run: 32 hex digits derived from its `wfr_` ID."""
    return hashlib.sha256(run_id.encode()).hexdigest()[:32]


def span_id(run_id: str, step: str, attempt: int) -> str:
    """The span ID of one step attempt (an LLM call's generation hangs under it)."""
    return hashlib.sha256(f"{run_id}:{step}:{attempt}".encode()).hexdigest()[:32]


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class LangfuseTracer:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        host: str,
        public_key: str,
        secret_key: str,
        prices: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        self.http = http
        self.prices = prices  # LLM price per million input / output tokens (0: cost not reported)
        self.url = host.rstrip("/") + "/api/public/ingestion"
        self.auth = (public_key, secret_key)
        self.queue: list[dict[str, Any]] = []
        self.traced: set[str] = set()  # runs whose trace this process created

    def step_attempted(self, attempt: StepAttempt) -> None:
        """Queue the run's trace (once per process) and a span for this attempt."""
        if len(self.queue) >= MAX_QUEUE:
            return
        now = datetime.now(UTC)
        trace = trace_id(attempt.run_id)
        if attempt.run_id not in self.traced:  # Langfuse upserts a trace by ID: a repeat is harmless
            if len(self.traced) > MAX_QUEUE:
                self.traced.clear()
            self.traced.add(attempt.run_id)
            body = {
                "id": trace,
                "name": attempt.workflow,
                "timestamp": _iso(now),
                "metadata": {"run_id": attempt.run_id},
            }
            self._event("trace-create", body, now)
        span = {
            "id": span_id(attempt.run_id, attempt.step, attempt.attempt),
            "traceId": trace,
            "name": attempt.step,
            "startTime": _iso(now - timedelta(seconds=attempt.duration_s)),
            "endTime": _iso(now),
            "level": "ERROR" if attempt.outcome in ("failed", "retry") else "DEFAULT",
            "metadata": {"attempt": attempt.attempt, "outcome": attempt.outcome, "inline": attempt.inline},
        }
        self._event("span-create", span, now)

    def generation(self, call: LLMCall) -> None:
        """Queue a generation for an LLM request, inside the span of the step attempt that made it."""
        run_id = workflow_id_var.get()
        if run_id is None or len(self.queue) >= MAX_QUEUE:
            return
        step, attempt = step_var.get(), attempt_var.get()
        body: dict[str, Any] = {
            "id": str(uuid.uuid4()).replace("-", ""),
            "traceId": trace_id(run_id),
            "name": f"llm:{call.model}",
            "model": call.model,
            "startTime": _iso(call.started_at),
            "endTime": _iso(call.started_at + timedelta(seconds=call.duration_s)),
            "level": "DEFAULT" if call.status is not None and call.status < 400 else "ERROR",
            "metadata": {"status": call.status, "latency_ms": round(call.duration_s * 1000, 1)},
        }
        if step is not None and attempt is not None:
            body["parentObservationId"] = span_id(run_id, step, attempt)
        if call.input_tokens is not None or call.output_tokens is not None:
            tokens_in, tokens_out = call.input_tokens or 0, call.output_tokens or 0
            body["usage"] = {
                "input": tokens_in,
                "output": tokens_out,
                "total": tokens_in + tokens_out,
                "unit": "TOKENS",
            }
            if self.prices != (0.0, 0.0):
                cost = (tokens_in * self.prices[0] + tokens_out * self.prices[1]) / 1_000_000
                body["usage"]["totalCost"] = round(cost, 8)
        self._event("generation-create", body, datetime.now(UTC))

    def _event(self, kind: str, body: dict[str, Any], at: datetime) -> None:
        self.queue.append({"id": str(uuid.uuid4()), "type": kind, "timestamp": _iso(at), "body": body})

    async def flush(self) -> None:
        """Send what is queued, in batches; a batch Langfuse refuses is dropped with one warning."""
        while self.queue:
            batch, self.queue = self.queue[:BATCH], self.queue[BATCH:]
            try:
                response = await self.http.post(self.url, json={"batch": batch}, auth=self.auth, timeout=10)
                response.raise_for_status()
            except httpx.HTTPError as exc:
                log.warning("Langfuse ingestion failed, %d trace event(s) dropped: %s", len(batch), exc)
                return
