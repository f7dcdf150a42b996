"""Consent routes: grant, revoke, list (DESIGN 5)."""

from __future__ import annotations

from fastapi import APIRouter

from app.auth.dependencies import PrincipalDep
from app.consents import service
from app.consents.schemas import ConsentCreate, ConsentList, ConsentRead
from app.dependencies import SessionDep

router = APIRouter(tags=["consents"])


@router.post("/cases/{case_id}/consents", status_code=201)
async def grant_consents(
    case_id: str, body: ConsentCreate, session: SessionDep, principal: PrincipalDep
) -> ConsentList:
    """Consent to forwarding the case to each provider until `expires_at`."""
    rows = await service.grant(session, case_id=case_id, data=body, principal=principal)
    return ConsentList(items=[service.to_read(row) for row in rows])


@router.delete("/consents/{consent_id}")
async def revoke_consent(consent_id: str, session: SessionDep, principal: PrincipalDep) -> ConsentRead:
    """Revoke a consent: nothing more is sent to that provider for this case."""
    return service.to_read(await service.revoke(session, consent_id=consent_id, principal=principal))


@router.get("/cases/{case_id}/consents")
async def list_consents(case_id: str, session: SessionDep, principal: PrincipalDep) -> ConsentList:
    """The case's consents, each `active`, `revoked` or `expired`."""
    rows = await service.list_consents(session, case_id=case_id, principal=principal)
    return ConsentList(items=[service.to_read(row) for row in rows])
