"""Forwardings: start one (refusing an overlapping one still running), read one, and its packet.

Starting writes the forwarding, one pending delivery per provider and the start of the
provider-forwarding run (`runtime.start_in`) in one transaction: a crash or a QStash outage
after the commit only delays the run to the watchdog's sweep, and no forwarding is left
`running` without a run. Two forwardings of one case to overlapping providers cannot both be
running: the check and the insert happen with the case row locked (SQLite serialises writers).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.tokens import Principal
from app.cases.service import get_case, lock_case
from app.db import utcnow
from app.errors import Conflict, NotFound
from app.forwardings.models import Forwarding, ForwardingStatus
from app.forwardings.schemas import ForwardingCreate, ForwardingRead, ProviderOutcome
from app.ids import new_id
from app.providers import deliveries
from app.providers.service import require_providers
from app.runtime.events import record_event
from app.runtime.ids import new_run_id
from app.runtime.runtime import Runtime

WORKFLOW = "provider-forwarding"


async def start_forwarding(
    session: AsyncSession, *, runtime: Runtime, case_id: str, data: ForwardingCreate, principal: Principal
) -> Forwarding:
    """Record the forwarding and start its run (commits; 409 if an overlapping one is running)."""
    await get_case(session, case_id=case_id, principal=principal)
    provider_ids = sorted(dict.fromkeys(data.provider_ids))
    await require_providers(session, provider_ids=provider_ids)
    await session.commit()  # end the read transaction; the write below locks the case first
    await lock_case(session, case_id=case_id)
    running = await session.scalars(
        select(Forwarding).where(Forwarding.case_id == case_id, Forwarding.status == ForwardingStatus.RUNNING)
    )
    for other in running:
        overlap = sorted(set(other.provider_ids) & set(provider_ids))
        if overlap:
            raise Conflict(
                f"forwarding {other.id} of this case to {', '.join(overlap)} is still running; "
                "wait for it to complete (GET /forwardings/{id})"
            )
    run_id = new_run_id()
    forwarding = Forwarding(
        id=new_id("fwd"),
        case_id=case_id,
        provider_ids=provider_ids,
        status=ForwardingStatus.RUNNING,
        requested_by="ops" if principal.is_ops else f"patient:{principal.patient_id}",
        workflow_run_id=run_id,
    )
    session.add(forwarding)
    await session.flush()
    await deliveries.create_deliveries(session, forwarding_id=forwarding.id, case_id=case_id, provider_ids=provider_ids)
    record_event(
        session,
        "forwarding.requested",
        case_id=case_id,
        workflow_id=run_id,
        payload={"forwarding_id": forwarding.id, "provider_ids": provider_ids, "by": forwarding.requested_by},
    )
    payload = {"forwarding_id": forwarding.id}
    start = await runtime.start_in(session, WORKFLOW, payload, run_id=run_id, labels={"case_id": case_id})
    await session.commit()
    await runtime.flush([start])  # what QStash refuses, the watchdog's sweep sends
    return forwarding


async def get_forwarding(
    session: AsyncSession, *, forwarding_id: str, principal: Principal | None = None
) -> Forwarding:
    forwarding = await session.get(Forwarding, forwarding_id)
    if forwarding is None:
        raise NotFound(f"no forwarding {forwarding_id}")
    if principal is not None:
        await get_case(session, case_id=forwarding.case_id, principal=principal)
    return forwarding


async def read_forwarding(session: AsyncSession, *, forwarding_id: str, principal: Principal) -> ForwardingRead:
    forwarding = await get_forwarding(session, forwarding_id=forwarding_id, principal=principal)
    rows = await deliveries.forwarding_deliveries(session, forwarding_id=forwarding_id)
    return ForwardingRead(
        id=forwarding.id,
        case_id=forwarding.case_id,
        status=forwarding.status,
        workflow_run_id=forwarding.workflow_run_id,
        created_at=forwarding.created_at,
        finished_at=forwarding.finished_at,
        failure_reason=forwarding.failure_reason,
        providers=[
            ProviderOutcome(
                provider_id=r.provider_id,
                status=r.status,
                attempts=r.attempts,
                last_status=r.last_status,
                reason=r.reason,
                delivery_id=r.id,
            )
            for r in rows
        ],
    )


async def save_packet(session: AsyncSession, *, forwarding_id: str, packet: dict[str, Any]) -> None:
    forwarding = await get_forwarding(session, forwarding_id=forwarding_id)
    forwarding.packet = packet
    await session.flush()


async def complete(session: AsyncSession, *, forwarding_id: str, failure_reason: str | None = None) -> Forwarding:
    forwarding = await get_forwarding(session, forwarding_id=forwarding_id)
    if forwarding.status != ForwardingStatus.COMPLETED:
        forwarding.status = ForwardingStatus.COMPLETED
        forwarding.finished_at = utcnow()
        forwarding.failure_reason = failure_reason
    await session.flush()
    return forwarding
