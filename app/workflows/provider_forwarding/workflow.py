"""The provider-forwarding pipeline (DESIGN 4): a case's records to the providers the patient picked.

    aggregate-ehr -> on-site-tests -> verify-consent -> build-packet
    -> deliver-<provider> (one webhook-delivery child run each, in parallel) -> notify-patient

A provider without an active consent is `skipped_no_consent` and is sent nothing. Each child
runs on its own (its retries and circuit waits are durable sleeps), so a failing hospital never
delays the others; each child tells the patient its outcome as it ends, and `notify-patient`
sums them up once all have ended.

Running runs replay by step name and position: never rename or reorder the steps here.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel

from app.runtime.context import FailureContext, WorkflowContext
from app.runtime.registry import workflow
from app.workflows.deps import PipelineDeps
from app.workflows.provider_forwarding import stages
from app.workflows.webhook_delivery import WebhookDeliveryInput


class ProviderForwardingInput(BaseModel):
    forwarding_id: str


async def mark_forwarding_failed(failure: FailureContext) -> None:
    payload = ProviderForwardingInput.model_validate(failure.payload)
    await stages.mark_failed(failure.deps, payload.forwarding_id, failure.message or failure.error)


@workflow("provider-forwarding", on_failure=mark_forwarding_failed)
async def provider_forwarding(ctx: WorkflowContext, payload: ProviderForwardingInput) -> dict[str, Any]:
    deps: PipelineDeps = ctx.deps
    forwarding_id = payload.forwarding_id
    ehr = await ctx.run("aggregate-ehr", stages.aggregate_ehr, deps, forwarding_id)
    notice = await ctx.run("on-site-tests", stages.on_site_tests, deps, forwarding_id)
    consent = await ctx.run("verify-consent", stages.verify_consent, deps, forwarding_id)
    await ctx.run("build-packet", stages.build_packet, deps, forwarding_id)
    await asyncio.gather(
        *(
            ctx.invoke(
                f"deliver-{item['provider_id']}",
                "webhook-delivery",
                WebhookDeliveryInput(delivery_id=item["delivery_id"]),
            )
            for item in consent["eligible"]
        ),
        return_exceptions=True,  # a child that failed dead-lettered its delivery: report, not fail
    )
    counts = await ctx.run("notify-patient", stages.finish, deps, forwarding_id)
    return {"ehr_entries": ehr["entries"], "missing_tests": notice["missing"], "outcomes": counts}
