"""The webhook-delivery pipeline (DESIGN 4): one packet to one provider, signed, retried, audited.

    gate-1 -> send-1 -> [backoff-1 -> gate-2 -> send-2 -> ...] -> delivered | dead_lettered
    (delivered to a provider with ack_required: -> await-ack -> acknowledgement)

`gate` stops the run when the delivery is finished or its consent is gone (revoked or expired
while it waited: nothing more is sent) and holds it, in durable waits, while the provider's
circuit is open (`circuit-wait-N`); the probe that closes the circuit notifies them
(`circuit-closed-N`). `send` makes one attempt (stages.py); a retryable answer is followed by a
durable sleep (`backoff-N`: exponential with jitter, or `Retry-After`), no process held.
A provider that acknowledges (`ack_required`) is waited for (`await-ack`, at most
WEBHOOK_ACK_TIMEOUT_S); a wait that times out records the escalation `webhook.ack_overdue`.
A replay (ops) is a new run with `series` + 1: new attempt numbers, the same `webhook-id`.

Running runs replay by step name and position: never rename or reorder the steps here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from app.providers.acks import ack_event_id
from app.runtime.context import FailureContext, WorkflowContext
from app.runtime.registry import workflow
from app.workflows.deps import PipelineDeps
from app.workflows.webhook_delivery import stages

SEND_STEP_RETRIES = 2  # only for a process that died mid-attempt, or a database error


class WebhookDeliveryInput(BaseModel):
    delivery_id: str
    series: int = 0


async def mark_delivery_failed(failure: FailureContext) -> None:
    payload = WebhookDeliveryInput.model_validate(failure.payload)
    await stages.mark_failed(failure.deps, payload.delivery_id, failure.message or failure.error)


@workflow("webhook-delivery", on_failure=mark_delivery_failed)
async def webhook_delivery(ctx: WorkflowContext, payload: WebhookDeliveryInput) -> dict[str, Any]:
    deps: PipelineDeps = ctx.deps
    delivery_id, series = payload.delivery_id, payload.series
    attempt, turn = 0, 0
    timeout = deps.settings.webhook_timeout_s + 60
    while True:
        turn += 1
        gate = await ctx.run(f"gate-{turn}", stages.gate, deps, delivery_id, ctx.run_id)
        if gate["action"] == "stop":
            return {"delivery_id": delivery_id, "status": gate["status"], "attempts": attempt}
        if gate["action"] == "wait":  # until the cool-down ends, or the probe's success wakes us
            await ctx.wait_for_event(f"circuit-wait-{turn}", gate["event"], timeout=gate["wait_s"])
            continue
        attempt += 1
        sent = await ctx.run(
            f"send-{attempt}",
            stages.send_attempt,
            deps,
            delivery_id,
            series,
            attempt,
            retries=SEND_STEP_RETRIES,
            timeout=timeout,
        )
        if sent["circuit_closed"]:  # this attempt was the probe that closed the circuit
            await ctx.notify(f"circuit-closed-{attempt}", sent["circuit_closed"], {"delivery_id": delivery_id})
        if sent["outcome"] == "delivered" and sent["ack_required"]:
            timeout_s = deps.settings.webhook_ack_timeout_s
            ack = await ctx.wait_for_event("await-ack", ack_event_id(delivery_id), timeout=timeout_s)
            await ctx.run("acknowledgement", stages.record_ack, deps, delivery_id, not ack["timed_out"])
        if sent["outcome"] != "retry":
            status = {"no_consent": "skipped_no_consent"}.get(sent["outcome"], sent["outcome"])
            return {"delivery_id": delivery_id, "status": status, "attempts": attempt}
        await ctx.sleep(f"backoff-{attempt}", sent["retry_in_s"])
