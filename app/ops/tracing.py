"""Langfuse tracing over its public ingestion API, only when keys are set.

One trace per workflow run, whose ID is derived from the run ID (`trace_id(run_id)`: 32 hex
digits of SHA-256, so every process and every retry of a run lands on the same trace), and
one span per step attempt (name = step, with attempt, outcome and whether it ran inline; a
failed attempt is level ERROR). Events are queued in memory by the runtime's step hook and
POSTed in batches to `LANGFUSE_HOST/api/public/ingestion` (basic auth with the public and
secret keys) by a background loop; a failed batch is logged once and dropped, never retried in
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

from app.runtime.hooks import StepAttempt

log = logging.getLogger(__name__)

MAX_QUEUE = 10_000
BATCH = 200


def trace_id(run_id: str) -> str:
    """The Langfuse trace ID of a run: 32 hex digits derived from its `wfr_` ID."""
    return hashlib.sha256(run_id.encode()).hexdigest()[:32]


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class LangfuseTracer:
    def __init__(self, http: httpx.AsyncClient, *, host: str, public_key: str, secret_key: str) -> None:
        self.http = http
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
            "id": hashlib.sha256(f"{attempt.run_id}:{attempt.step}:{attempt.attempt}".encode()).hexdigest()[:32],
            "traceId": trace,
            "name": attempt.step,
            "startTime": _iso(now - timedelta(seconds=attempt.duration_s)),
            "endTime": _iso(now),
            "level": "ERROR" if attempt.outcome in ("failed", "retry") else "DEFAULT",
            "metadata": {"attempt": attempt.attempt, "outcome": attempt.outcome, "inline": attempt.inline},
        }
        self._event("span-create", span, now)

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
