"""Alerts: a run failed, a dead letter, a stuck run, a quota warning, each an event of its own type.

    alert.run_failed     from a run's `workflow.failed` event (payload: error, source_event_id)
    alert.stuck_run      from the watchdog's `workflow.stuck` event
    alert.dead_letter    from a new entry in a dead-letter source (QStash's DLQ)
    alert.quota_warning  written by `UsageRecorder.flush` when a day passes the warning ratio

Alert rows leave the `events` table's `workflow_id`, `case_id` and `document_id` empty (an
alert is about a run, not a step of it: a run's own event list stays what the runtime wrote)
and name them in the payload; the stream and the webhook show them as fields.

`AlertWatcher` runs in every process (`OPS_ALERTS_POLL_S`): it reads the events after the last
one it turned into an alert (the high-water mark is kept in the alerts themselves, so a restart
carries on where it stopped) and writes each alert once, checking the run's alerts for the
same source first. Dead-letter sources are polled every `OPS_ALERTS_DLQ_POLL_S`.

Alerts are followed on `GET /ops/alerts` (SSE) and, when `OPS_ALERT_WEBHOOK_URL` is set, POSTed
there signed like Standard Webhooks (`webhook-id`, `webhook-timestamp`,
`webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>` with `OPS_ALERT_WEBHOOK_SECRET`),
signed by the `standardwebhooks` library as provider webhooks are (`app.providers.signing`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import transaction, utcnow
from app.ops.deadletters import DeadLetters
from app.providers.signing import signature_headers
from app.runtime.models import Event

log = logging.getLogger(__name__)

RUN_FAILED, STUCK_RUN, DEAD_LETTER, QUOTA = (
    "alert.run_failed",
    "alert.stuck_run",
    "alert.dead_letter",
    "alert.quota_warning",
)
ALERT_TYPES = (RUN_FAILED, STUCK_RUN, DEAD_LETTER, QUOTA)
FROM_EVENTS = {"workflow.failed": RUN_FAILED, "workflow.stuck": STUCK_RUN}
BATCH = 500


class AlertWatcher:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        dead_letters: DeadLetters,
        http: httpx.AsyncClient,
        *,
        webhook_url: str = "",
        webhook_secret: str = "",
        dlq_poll_s: float = 30.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.dead_letters = dead_letters
        self.http = http
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.dlq_poll_s = dlq_poll_s
        self.clock = clock
        self._after: int | None = None
        self._dlq_due = 0.0

    async def round(self) -> list[Event]:
        """One pass: new alerts from events and dead letters; each is sent to the webhook."""
        alerts = await self._from_events()
        if time.monotonic() >= self._dlq_due:
            self._dlq_due = time.monotonic() + self.dlq_poll_s
            alerts += await self._from_dead_letters()
        for alert in alerts:
            await self._send(alert)
        return alerts

    async def _from_events(self) -> list[Event]:
        async with transaction(self.sessions) as session:
            if self._after is None:
                self._after = await self._high_water(session)
            query = (
                select(Event)
                .where(Event.id > self._after, Event.type.in_([*FROM_EVENTS, QUOTA]))
                .order_by(Event.id)
                .limit(BATCH)
            )
            sources = list(await session.scalars(query))
            alerts = [a for a in [await self._alert_once(session, e) for e in sources] if a is not None]
            await session.flush()
        if sources:
            self._after = sources[-1].id
        return alerts

    async def _high_water(self, session: AsyncSession) -> int:
        latest = await session.scalar(
            select(Event.payload).where(Event.type.in_([RUN_FAILED, STUCK_RUN])).order_by(Event.id.desc()).limit(1)
        )
        return int(latest.get("source_event_id", 0)) if isinstance(latest, dict) else 0

    async def _alert_once(self, session: AsyncSession, source: Event) -> Event | None:
        if source.type == QUOTA:  # written as an alert already (usage.py): only to be sent
            return source
        kind = FROM_EVENTS[source.type]
        # An alert is written after its source: only alerts after it can be its duplicate.
        seen = await session.scalars(select(Event.payload).where(Event.type == kind, Event.id > source.id))
        if any(isinstance(p, dict) and p.get("source_event_id") == source.id for p in seen):
            return None
        refs = {"workflow_id": source.workflow_id, "case_id": source.case_id, "document_id": source.document_id}
        payload = {"source_event_id": source.id, **{k: v for k, v in refs.items() if v}, **(source.payload or {})}
        alert = Event(type=kind, payload=payload, created_at=self.clock())
        session.add(alert)
        return alert

    async def _from_dead_letters(self) -> list[Event]:
        try:
            page = await self.dead_letters.list(count=100)
        except Exception as exc:  # the source is down: try again at the next poll
            log.warning("dead letters not checked for alerts: %s", exc)
            return []
        if not page.items:
            return []
        async with transaction(self.sessions) as session:
            known = {
                p.get("dead_letter_id")
                for p in await session.scalars(select(Event.payload).where(Event.type == DEAD_LETTER))
                if isinstance(p, dict)
            }
            alerts = []
            for letter in page.items:
                if letter.id in known:
                    continue
                payload = {
                    "dead_letter_id": letter.id,
                    "url": letter.url,
                    "response_status": letter.response_status,
                    "error": letter.error,
                }
                alert = Event(
                    type=DEAD_LETTER, workflow_id=letter.workflow_run_id, payload=payload, created_at=self.clock()
                )
                session.add(alert)
                alerts.append(alert)
            await session.flush()
        return alerts

    async def _send(self, alert: Event) -> None:
        if not self.webhook_url:
            return
        body = json.dumps(alert_view(alert))
        # A `whsec_` secret is base64 (Standard Webhooks); any other is used as its bytes.
        secret = self.webhook_secret if self.webhook_secret.startswith("whsec_") else self.webhook_secret.encode()
        headers = {
            "content-type": "application/json",
            **signature_headers(f"alert_{alert.id}", body, [secret], utcnow()),
        }
        try:
            response = await self.http.post(self.webhook_url, content=body, headers=headers, timeout=10)
            response.raise_for_status()
        except httpx.HTTPError as exc:  # alerts stay in the events table and on /ops/alerts
            log.warning("alert %s not delivered to the ops webhook: %s", alert.id, exc)


def alert_view(event: Event) -> dict[str, Any]:
    """The alert as streamed and sent: the run, case and document it is about lifted from its payload."""
    payload = event.payload if isinstance(event.payload, dict) else {}
    return {
        "id": event.id,
        "type": event.type,
        "workflow_id": payload.get("workflow_id"),
        "case_id": payload.get("case_id"),
        "document_id": payload.get("document_id"),
        "payload": event.payload,
        "created_at": event.created_at.isoformat() if event.created_at else None,
    }


async def alert_stream(
    sessions: async_sessionmaker[AsyncSession], after: int, *, poll_s: float, stopping: Callable[[], bool]
) -> AsyncIterator[dict[str, Any]]:
    """Alerts after event `after`, oldest first, as they are written (polling the events table)."""
    while not stopping():
        async with sessions() as session:
            rows = list(
                await session.scalars(
                    select(Event).where(Event.id > after, Event.type.in_(ALERT_TYPES)).order_by(Event.id).limit(BATCH)
                )
            )
        for row in rows:
            after = row.id
            yield alert_view(row)
        if not rows:
            await asyncio.sleep(poll_s)
