"""Consents: grant (per provider, until a time), revoke, list; and "may we send now?".

Granting and revoking are recorded with who and when, on the row and as `consent.granted` /
`consent.revoked` events on the case (so the patient sees them on the case's stream).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.tokens import Principal
from app.cases.service import get_case
from app.consents.models import Consent, ConsentStatus
from app.consents.schemas import ConsentCreate, ConsentRead
from app.db import utcnow
from app.errors import BadRequest, NotFound
from app.ids import new_id
from app.providers.service import require_providers
from app.runtime.events import record_event


def actor(principal: Principal) -> str:
    return "ops" if principal.is_ops else f"patient:{principal.patient_id}"


def to_read(consent: Consent, now: datetime | None = None) -> ConsentRead:
    return ConsentRead(
        id=consent.id,
        case_id=consent.case_id,
        provider_id=consent.provider_id,
        status=consent.status_at(now or utcnow()),
        granted_by=consent.granted_by,
        granted_at=consent.granted_at,
        expires_at=consent.expires_at,
        revoked_by=consent.revoked_by,
        revoked_at=consent.revoked_at,
    )


async def grant(session: AsyncSession, *, case_id: str, data: ConsentCreate, principal: Principal) -> list[Consent]:
    await get_case(session, case_id=case_id, principal=principal)
    if data.expires_at.tzinfo is None:
        raise BadRequest("expires_at needs a timezone, e.g. 2027-01-01T00:00:00Z")
    now = utcnow()
    if data.expires_at <= now:
        raise BadRequest("expires_at is in the past; a consent must end in the future")
    provider_ids = list(dict.fromkeys(data.provider_ids))
    await require_providers(session, provider_ids=provider_ids)
    rows = []
    for provider_id in provider_ids:
        consent = Consent(
            id=new_id("cons"),
            case_id=case_id,
            provider_id=provider_id,
            granted_by=actor(principal),
            granted_at=now,
            expires_at=data.expires_at,
        )
        session.add(consent)
        record_event(
            session,
            "consent.granted",
            case_id=case_id,
            payload={
                "consent_id": consent.id,
                "provider_id": provider_id,
                "by": consent.granted_by,
                "expires_at": data.expires_at.isoformat(),
            },
        )
        rows.append(consent)
    await session.flush()
    return rows


async def revoke(session: AsyncSession, *, consent_id: str, principal: Principal) -> Consent:
    consent = await session.get(Consent, consent_id)
    if consent is None:
        raise NotFound(f"no consent {consent_id}")
    await get_case(session, case_id=consent.case_id, principal=principal)
    if consent.revoked_at is None:
        consent.revoked_at = utcnow()
        consent.revoked_by = actor(principal)
        record_event(
            session,
            "consent.revoked",
            case_id=consent.case_id,
            payload={
                "consent_id": consent.id,
                "provider_id": consent.provider_id,
                "by": consent.revoked_by,
            },
        )
        await session.flush()
    return consent


async def list_consents(session: AsyncSession, *, case_id: str, principal: Principal) -> list[Consent]:
    await get_case(session, case_id=case_id, principal=principal)
    query = select(Consent).where(Consent.case_id == case_id).order_by(Consent.granted_at, Consent.id)
    return list(await session.scalars(query))


@dataclass(frozen=True, slots=True)
class ConsentCheck:
    granted: bool
    reason: str | None = None


async def check(session: AsyncSession, *, case_id: str, provider_id: str, now: datetime | None = None) -> ConsentCheck:
    """Is there an active consent (granted, not revoked, not expired) for this case and provider?"""
    now = now or utcnow()
    query = select(Consent).where(Consent.case_id == case_id, Consent.provider_id == provider_id)
    consents = list(await session.scalars(query.order_by(Consent.granted_at.desc())))
    if any(c.status_at(now) == ConsentStatus.ACTIVE for c in consents):
        return ConsentCheck(True)
    if not consents:
        return ConsentCheck(False, "the patient has not consented to forwarding to this provider")
    latest = consents[0]
    if latest.revoked_at is not None:
        return ConsentCheck(False, f"consent revoked at {latest.revoked_at.isoformat()} by {latest.revoked_by}")
    return ConsentCheck(False, f"consent expired at {latest.expires_at.isoformat()}")
