"""Forwarding routes: send a case to providers, and follow it (DESIGN 5)."""

from __future__ import annotations

from fastapi import APIRouter

from app.auth.dependencies import PrincipalDep
from app.dependencies import RuntimeDep, SessionDep
from app.forwardings import service
from app.forwardings.schemas import ForwardingAccepted, ForwardingCreate, ForwardingRead

router = APIRouter(tags=["forwardings"])


@router.post("/cases/{case_id}/forwardings", status_code=202)
async def forward_case(
    case_id: str, body: ForwardingCreate, session: SessionDep, runtime: RuntimeDep, principal: PrincipalDep
) -> ForwardingAccepted:
    """Send the case's records to these providers (each only with the patient's consent)."""
    forwarding = await service.start_forwarding(
        session, runtime=runtime, case_id=case_id, data=body, principal=principal
    )
    assert forwarding.workflow_run_id is not None
    return ForwardingAccepted(forwarding_id=forwarding.id, workflow_run_id=forwarding.workflow_run_id)


@router.get("/forwardings/{forwarding_id}")
async def read_forwarding(forwarding_id: str, session: SessionDep, principal: PrincipalDep) -> ForwardingRead:
    """The forwarding and, per provider, its delivery's status, attempts and last HTTP status."""
    return await service.read_forwarding(session, forwarding_id=forwarding_id, principal=principal)
