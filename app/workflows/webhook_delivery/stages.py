"""The webhook-delivery stages: `gate` (may we send now?) and `send` (one attempt).

`send` is the durable step around one HTTP POST. It first looks for its own attempt row: a
step re-run after the process died *past* its commit returns what was recorded and sends
nothing. A step re-run after the process died *before* its commit sends again, with the same
`webhook-id`, so at most the attempt in flight is repeated and receivers can deduplicate it.
Consent is checked inside `send`, right before the request. Step results carry only statuses
and delays; the packet is read from the database.
"""

from __future__ import annotations

import json
import random
from typing import Any

from app.consents import service as consents
from app.db import transaction, utcnow
from app.forwardings import service as forwardings
from app.providers import acks, circuit, deliveries
from app.providers import service as providers
from app.providers.models import TERMINAL_DELIVERY_STATUSES, DeliveryStatus
from app.providers.sender import AttemptResult, send
from app.providers.signing import signature_headers
from app.workflows.deps import PipelineDeps


def backoff_s(deps: PipelineDeps, attempt: int, retry_after_s: float | None) -> float:
    """Delay before attempt `attempt + 1`: exponential with jitter, or the provider's Retry-After."""
    s = deps.settings
    if retry_after_s is not None:
        return min(max(retry_after_s, 0.0), s.webhook_backoff_max_s)
    delay = min(s.webhook_backoff_max_s, s.webhook_backoff_initial_s * s.webhook_backoff_factor ** (attempt - 1))
    return max(0.0, delay * (1 + random.uniform(-s.webhook_backoff_jitter, s.webhook_backoff_jitter)))


async def gate(deps: PipelineDeps, delivery_id: str, run_id: str) -> dict[str, Any]:
    """`gate-N`: stop (finished, or no consent), wait (the provider's circuit is open) or send."""
    async with transaction(deps.sessions) as session:
        row = await deliveries.get_delivery(session, delivery_id=delivery_id, lock=True)
        if row.status in TERMINAL_DELIVERY_STATUSES:
            return {"action": "stop", "status": row.status}
        row.workflow_run_id = run_id
        consent = await consents.check(session, case_id=row.case_id, provider_id=row.provider_id)
        provider = await circuit.lock_provider(session, row.provider_id)
        if not consent.granted:
            circuit.release_probe(provider, delivery_id)
            deliveries.finish(session, row, DeliveryStatus.SKIPPED_NO_CONSENT, reason=consent.reason)
            return {"action": "stop", "status": row.status}
        verdict = circuit.gate(session, provider, delivery_id, utcnow(), deps.settings.circuit_cooldown_s)
        if not verdict.send:
            return {"action": "wait", "wait_s": verdict.wait_s, "event": verdict.closed_event}
    return {"action": "send"}


async def _body(deps: PipelineDeps, delivery_id: str, forwarding_id: str, provider_id: str, ack: bool) -> str:
    """The payload, the same bytes on every attempt (the packet, and where to acknowledge)."""
    async with deps.sessions() as session:
        forwarding = await forwardings.get_forwarding(session, forwarding_id=forwarding_id)
        packet = forwarding.packet or {}
        created = forwarding.created_at.isoformat()
    data = {"forwarding_id": forwarding_id, "provider_id": provider_id, **packet}
    if ack:
        url = f"{deps.settings.base_url}/webhooks/ack/{delivery_id}"
        data["ack"] = {"url": url, "token": acks.ack_token(deps.settings.auth_secret.get_secret_value(), delivery_id)}
    message = {"type": "case.forwarded", "timestamp": created, "data": data}
    return json.dumps(message, sort_keys=True, separators=(",", ":"))


async def send_attempt(deps: PipelineDeps, delivery_id: str, series: int, attempt: int) -> dict[str, Any]:
    """`send-N`: one signed POST (consent re-checked first), recorded with its outcome."""
    async with deps.sessions() as session:
        done = await deliveries.recorded_attempt(session, delivery_id=delivery_id, series=series, attempt=attempt)
        row = await deliveries.get_delivery(session, delivery_id=delivery_id)
        provider = await providers.get_provider(session, provider_id=row.provider_id)
        ack = provider.ack_required
        if done is not None:
            return _answer(done.outcome, done.status_code, done.retry_in_s, ack)
        consent = await consents.check(session, case_id=row.case_id, provider_id=row.provider_id)
        url, signing_secrets = provider.webhook_url, providers.signing_secrets(provider, utcnow())
    if not consent.granted:
        return await _no_consent(deps, delivery_id, series, attempt, consent.reason)
    body = await _body(deps, delivery_id, row.forwarding_id, row.provider_id, ack)
    settings = deps.settings
    result = await send(
        deps.http,
        url,
        body,
        signature_headers(delivery_id, body, signing_secrets, utcnow()),
        timeout_s=settings.webhook_timeout_s,
        allow_private=settings.webhook_allow_private_urls,
        excerpt_chars=settings.webhook_response_excerpt_chars,
    )
    answer = await _record(deps, delivery_id, series, attempt, result)
    return answer | {"ack_required": ack}


def _answer(outcome: str, status_code: int | None, retry_in_s: float | None, ack: bool = False) -> dict[str, Any]:
    return {
        "outcome": outcome,
        "status_code": status_code,
        "retry_in_s": retry_in_s,
        "ack_required": ack,
        "circuit_closed": None,  # the event to notify when this attempt, a probe, closed the circuit
    }


async def _no_consent(
    deps: PipelineDeps, delivery_id: str, series: int, attempt: int, reason: str | None
) -> dict[str, Any]:
    async with transaction(deps.sessions) as session:
        row = await deliveries.get_delivery(session, delivery_id=delivery_id, lock=True)
        provider = await circuit.lock_provider(session, row.provider_id)
        circuit.release_probe(provider, delivery_id)
        if row.status not in TERMINAL_DELIVERY_STATUSES:
            deliveries.finish(session, row, DeliveryStatus.SKIPPED_NO_CONSENT, reason=reason)
    return _answer("no_consent", None, None)


async def _record(
    deps: PipelineDeps, delivery_id: str, series: int, attempt: int, result: AttemptResult
) -> dict[str, Any]:
    settings = deps.settings
    outcome, retry_in, closed = result.outcome, None, None
    if outcome == "retry":
        if attempt >= settings.webhook_max_attempts:
            outcome = "dead_lettered"
        else:
            retry_in = round(backoff_s(deps, attempt, result.retry_after_s), 3)
    async with transaction(deps.sessions) as session:
        row = await deliveries.get_delivery(session, delivery_id=delivery_id, lock=True)
        provider = await circuit.lock_provider(session, row.provider_id)
        deliveries.record_attempt(
            session,
            row,
            series=series,
            attempt=attempt,
            outcome=outcome,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            error=result.error,
            excerpt=result.excerpt,
            retry_in_s=retry_in,
        )
        if result.outcome == "retry":
            circuit.record_failure(session, provider, delivery_id, utcnow(), settings.circuit_failure_threshold)
        elif result.status_code is not None:  # the provider answered: it is up
            closed = circuit.record_success(session, provider)
        else:
            circuit.release_probe(provider, delivery_id)
        if outcome == "delivered":
            deliveries.finish(session, row, DeliveryStatus.DELIVERED)
        elif outcome == "dead_lettered":
            deliveries.finish(session, row, DeliveryStatus.DEAD_LETTERED, reason=_reason(result, attempt))
    return _answer(outcome, result.status_code, retry_in) | {"circuit_closed": closed}


def _reason(result: AttemptResult, attempt: int) -> str:
    what = f"HTTP {result.status_code}" if result.status_code is not None else (result.error or "no answer")
    if result.outcome == "retry":
        return f"gave up after {attempt} attempts; last: {what}"
    return f"refused by the provider ({what}); not retried" if result.status_code is not None else what


async def mark_failed(deps: PipelineDeps, delivery_id: str, reason: str) -> None:
    """`on_failure`: the delivery's own run failed for good; dead-letter it so ops can replay it."""
    async with transaction(deps.sessions) as session:
        row = await deliveries.get_delivery(session, delivery_id=delivery_id, lock=True)
        if row.status not in TERMINAL_DELIVERY_STATUSES:
            deliveries.finish(session, row, DeliveryStatus.DEAD_LETTERED, reason=f"delivery failed: {reason}")


async def record_ack(deps: PipelineDeps, delivery_id: str, acknowledged: bool) -> dict[str, bool]:
    """`acknowledgement`: the hospital acknowledged, or the wait timed out (escalation event)."""
    async with transaction(deps.sessions) as session:
        row = await deliveries.get_delivery(session, delivery_id=delivery_id, lock=True)
        acks.record_ack(session, row, acknowledged=acknowledged)
    return {"acknowledged": acknowledged}
