"""Writing rows of the Curaway `events` table from domain code.

The runtime writes its own transition events (store.py). Domains add progress events with
`record_event` inside their own transaction; `record_event_once` keeps a progress event
unique per (document, type), so a step that is retried after a crash never shows the patient
the same stage twice.

`on_events_committed(callback)` calls `callback()` after each commit of a session that
`record_event` added to (the case progress feed walks at once instead of at its next poll).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.db import utcnow
from app.logging import workflow_id_var
from app.runtime.models import Event

_WRITTEN = "curaway_events_written"
_committed: set[Callable[[], None]] = set()


def on_events_committed(callback: Callable[[], None], *, remove: bool = False) -> None:
    """Register (or remove) `callback`, called after a commit that wrote events (must not block)."""
    if remove:
        _committed.discard(callback)
    else:
        _committed.add(callback)


@sa_event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_WRITTEN, False):
        for callback in list(_committed):
            callback()


@sa_event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_WRITTEN, None)


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
    session.info[_WRITTEN] = True
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
