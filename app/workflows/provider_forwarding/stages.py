"""The provider-forwarding stages: each one is a durable step of `workflow.py`.

The packet is assembled in the forwarding's row (`forwardings.packet`), piece by piece, so no
patient data is ever in a step result or a QStash message: steps return counts and IDs.
Every stage is idempotent: run again after a crash, it rewrites the same piece or finds the
delivery already decided.
"""

from __future__ import annotations

from typing import Any

from app.cases import service as cases
from app.consents import service as consents
from app.db import transaction, utcnow
from app.ehr.service import read_bundle
from app.forwardings import service as forwardings
from app.providers import deliveries
from app.providers.models import DeliveryStatus
from app.runtime.events import record_event
from app.workflows.deps import PipelineDeps


async def _merge_packet(deps: PipelineDeps, forwarding_id: str, **pieces: Any) -> None:
    async with transaction(deps.sessions) as session:
        forwarding = await forwardings.get_forwarding(session, forwarding_id=forwarding_id)
        await forwardings.save_packet(
            session, forwarding_id=forwarding_id, packet={**(forwarding.packet or {}), **pieces}
        )


async def aggregate_ehr(deps: PipelineDeps, forwarding_id: str) -> dict[str, int]:
    """`aggregate-ehr`: the case's deduplicated FHIR Bundle, into the packet."""
    async with deps.sessions() as session:
        forwarding = await forwardings.get_forwarding(session, forwarding_id=forwarding_id)
        bundle = await read_bundle(session, case_id=forwarding.case_id)
    await _merge_packet(deps, forwarding_id, ehr=bundle)
    return {"entries": len(bundle.get("entry") or [])}


async def on_site_tests(deps: PipelineDeps, forwarding_id: str) -> dict[str, int]:
    """`on-site-tests`: the procedure's requirements still missing (the matcher's checklist)."""
    async with deps.sessions() as session:
        forwarding = await forwardings.get_forwarding(session, forwarding_id=forwarding_id)
        case = await cases.get_case(session, case_id=forwarding.case_id)
        checklist = await cases.read_requirements(session, case=case)
    missing = [
        {"code": i.code, "requirement": i.requirement, "kind": i.kind} for i in checklist.items if i.status == "missing"
    ]
    notice = {
        "procedure": checklist.procedure,
        "missing": missing,
        "message": (
            f"{len(missing)} required test(s) are not covered by the documents and will be needed on site"
            if missing
            else "every required test is covered by the documents"
        ),
    }
    await _merge_packet(deps, forwarding_id, on_site_tests=notice)
    return {"missing": len(missing)}


async def verify_consent(deps: PipelineDeps, forwarding_id: str) -> dict[str, Any]:
    """`verify-consent`: providers without an active consent are `skipped_no_consent` (with why)."""
    async with transaction(deps.sessions) as session:
        rows = await deliveries.forwarding_deliveries(session, forwarding_id=forwarding_id)
        eligible, skipped = [], []
        for row in rows:
            if row.status == DeliveryStatus.SKIPPED_NO_CONSENT:
                skipped.append(row.provider_id)
                continue
            consent = await consents.check(session, case_id=row.case_id, provider_id=row.provider_id)
            if consent.granted:
                eligible.append({"provider_id": row.provider_id, "delivery_id": row.id})
            else:
                deliveries.finish(session, row, DeliveryStatus.SKIPPED_NO_CONSENT, reason=consent.reason)
                skipped.append(row.provider_id)
    return {"eligible": eligible, "skipped": skipped}


async def build_packet(deps: PipelineDeps, forwarding_id: str) -> dict[str, Any]:
    """`build-packet`: the packet's header; from here on it is what every provider receives."""
    async with deps.sessions() as session:
        forwarding = await forwardings.get_forwarding(session, forwarding_id=forwarding_id)
        case = await cases.get_case(session, case_id=forwarding.case_id)
        packet = forwarding.packet or {}
    await _merge_packet(
        deps,
        forwarding_id,
        case={"id": case.id, "procedure": case.procedure, "patient_ref": f"Patient/{case.patient_id}"},
        built_at=packet.get("built_at") or utcnow().isoformat(),
    )
    return {"forwarding_id": forwarding_id}


async def finish(deps: PipelineDeps, forwarding_id: str) -> dict[str, int]:
    """`notify-patient`: the forwarding is complete; one summary event with every provider's outcome."""
    async with transaction(deps.sessions) as session:
        forwarding = await forwardings.complete(session, forwarding_id=forwarding_id)
        rows = await deliveries.forwarding_deliveries(session, forwarding_id=forwarding_id)
        outcomes = {row.provider_id: row.status for row in rows}
        counts: dict[str, int] = {}
        for status in outcomes.values():
            counts[status] = counts.get(status, 0) + 1
        record_event(
            session,
            "forwarding.completed",
            case_id=forwarding.case_id,
            payload={"forwarding_id": forwarding_id, "providers": outcomes, "counts": counts},
        )
    return counts


async def mark_failed(deps: PipelineDeps, forwarding_id: str, reason: str) -> None:
    """`on_failure`: complete the forwarding with its reason; undecided deliveries are dead-lettered."""
    async with transaction(deps.sessions) as session:
        forwarding = await forwardings.complete(session, forwarding_id=forwarding_id, failure_reason=reason)
        for row in await deliveries.forwarding_deliveries(session, forwarding_id=forwarding_id):
            if row.status == DeliveryStatus.PENDING and row.attempts == 0 and row.workflow_run_id is None:
                deliveries.finish(session, row, DeliveryStatus.DEAD_LETTERED, reason=f"forwarding failed: {reason}")
        record_event(
            session,
            "forwarding.failed",
            case_id=forwarding.case_id,
            payload={"forwarding_id": forwarding_id, "reason": reason},
        )
