"""Writing rows of the Curaway `events` table from domain code.

The runtime writes its own transition events (store.py). Domains add progress events with
`record_event` inside their own transaction; `record_event_once` keeps a progress event
unique per (document, type), so a step that is retried after a crash never shows the patient
the same stage twice.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.logging import workflow_id_var
from app.runtime.models import Event


def record_event(
    session: AsyncSession,
    type_: str,
    *,
    case_id: str | None = None,
    document_id: str | None = None,
    workflow_id: str | None = None,
    payload: dict[str, Any] | None = None,
) -> Event:
    event = Event(
        workflow_id=workflow_id or workflow_id_var.get(),
        case_id=case_id,
        document_id=document_id,
        type=type_,
        payload=payload or {},
        created_at=utcnow(),
    )
    session.add(event)
    return event


async def record_event_once(
    session: AsyncSession, type_: str, *, case_id: str, document_id: str, payload: dict[str, Any] | None = None
) -> bool:
    """Add the event unless this document already has one of this type; True if added."""
    existing = await session.scalar(
        select(Event.id).where(Event.document_id == document_id, Event.type == type_).limit(1)
    )
    if existing is not None:
        return False
    record_event(session, type_, case_id=case_id, document_id=document_id, payload=payload)
    return True
