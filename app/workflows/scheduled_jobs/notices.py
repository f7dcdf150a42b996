"""Intake-reminder and notification-digest stages.

Reminders: a case opened `REMINDER_AFTER_HOURS` ago (within `REMINDER_LOOKBACK_DAYS` before
that) that still has no document gets one `intake_reminder`, keyed `intake-reminder:<case>`:
one per intake, ever, however often the job runs.

Digests: each patient's pending notifications become one digest, keyed by the run and the
patient, in one transaction (`notifications.service.make_digest`). With a sender configured
the digest then goes out through it, carrying that key as `Idempotency-Key`, and is marked
sent; a crash between sending and recording re-sends with the same key, which the gateway
drops, so the patient gets it once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from app.cases import service as cases
from app.db import transaction, utcnow
from app.notifications import service as notifications
from app.notifications.models import NotificationKind
from app.notifications.senders import build_sender
from app.workflows.deps import PipelineDeps

PAGE = 100


async def reminder_window(deps: PipelineDeps) -> dict[str, str]:
    """`window`: the cases to remind were opened between these two moments."""
    before = utcnow() - timedelta(hours=deps.settings.reminder_after_hours)
    after = before - timedelta(days=deps.settings.reminder_lookback_days)
    return {"before": before.isoformat(), "after": after.isoformat()}


async def remind_page(deps: PipelineDeps, window: dict[str, str], after_case: str) -> dict[str, Any]:
    """`remind-N`: one reminder per incomplete intake in the next page of cases (by ID)."""
    async with transaction(deps.sessions) as session:
        page = await cases.incomplete_intakes(
            session,
            created_before=datetime.fromisoformat(window["before"]),
            created_after=datetime.fromisoformat(window["after"]),
            after=after_case,
            limit=PAGE,
        )
        sent = 0
        for case in page:
            payload = {"case_id": case.id, "procedure": case.procedure, "message": "Please upload your documents."}
            key = f"intake-reminder:{case.id}"
            created = await notifications.notify(
                session,
                kind=NotificationKind.INTAKE_REMINDER,
                patient_id=case.patient_id,
                case_id=case.id,
                key=key,
                payload=payload,
            )
            sent += created is not None
    return {"reminded": sent, "last": page[-1].id if page else after_case, "more": len(page) == PAGE}


async def digest_page(deps: PipelineDeps, run_id: str, after_patient: str) -> dict[str, Any]:
    """`digest-N`: a digest for each of the next patients with pending notifications."""
    outbound = deps.settings.notify_sender != "none"
    made = 0
    async with deps.sessions() as session:
        patients = await notifications.patients_with_pending(session, after=after_patient, limit=PAGE)
    for patient_id in patients:
        async with transaction(deps.sessions) as session:
            key = f"digest:{run_id}:{patient_id}"
            made += (
                await notifications.make_digest(session, patient_id=patient_id, key=key, outbound=outbound) is not None
            )
    last = patients[-1] if patients else after_patient
    return {"digests": made, "last": last, "more": len(patients) == PAGE}


async def send_page(deps: PipelineDeps) -> dict[str, Any]:
    """`send-N`: hand the next digests waiting in the outbox to the sender, then mark them sent."""
    settings = deps.settings
    sender = build_sender(
        settings.notify_sender,
        url=settings.notify_http_url,
        token=settings.notify_http_token.get_secret_value(),
        http=deps.http,
    )
    if sender is None:
        return {"sent": 0, "more": False}
    async with deps.sessions() as session:
        waiting = await notifications.deliverable(session, limit=PAGE)
    for notification in waiting:
        await sender.send(notification)
        async with transaction(deps.sessions) as session:
            await notifications.mark_sent(session, notification_id=notification.id)
    return {"sent": len(waiting), "more": len(waiting) == PAGE}
