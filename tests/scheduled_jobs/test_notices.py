"""Intake reminders and digests: each sent exactly once across duplicated and repeated ticks,
and across a crash between sending a digest and recording it (a gateway that takes the
message, then answers 500)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.consents.models import Consent
from app.db import transaction
from app.notifications.models import Notification
from app.providers.models import Provider
from tests.scheduled_jobs.support import JOB_SETTINGS, days_ago, events, post_tick, rows, seed
from tests.support.live import serve
from tests.support.service import live_service

TICK = datetime(2026, 6, 1, 10, 5, tzinfo=UTC)


class Gateway:
    """A mail/SMS gateway that dedups by Idempotency-Key; it answers its first request 500 after
    taking the message, as if our side crashed between sending and recording."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.delivered: dict[str, dict] = {}

    def app(self) -> Starlette:
        async def send(request: Request) -> JSONResponse:
            key = request.headers["idempotency-key"]
            self.keys.append(key)
            self.delivered.setdefault(key, await request.json())
            return JSONResponse({}, status_code=500 if len(self.keys) == 1 else 200)

        return Starlette(routes=[Route("/send", send, methods=["POST"])])


async def test_reminders_and_digests_are_sent_exactly_once_across_duplicated_repeated_and_crashed_ticks(database_url):
    gateway = Gateway()
    async with serve(lambda _: gateway.app()) as (gateway_url, _):
        settings = {**JOB_SETTINGS, "notify_sender": "http", "notify_http_url": f"{gateway_url}/send"}
        async with live_service(database_url, None, **settings) as svc:
            sessions = svc.services.sessions
            due = await seed(sessions, prefix="due", cases=3, created=days_ago(2))
            await seed(sessions, prefix="new", cases=2, created=days_ago(0.5))  # not 24 h yet
            await seed(sessions, prefix="docs", cases=2, created=days_ago(2), documents_per_case=1, status="analyzed")

            duplicated = await asyncio.gather(*(post_tick(svc.base_url, "intake-reminders", TICK) for _ in range(2)))
            assert sorted(r.json()["status"] for r in duplicated) == ["duplicate", "started"]
            assert (await svc.wait(duplicated[0].json()["run_id"])).status == "completed"
            later = await post_tick(svc.base_url, "intake-reminders", TICK + timedelta(hours=1))
            assert (await svc.wait(later.json()["run_id"])).result == {"reminded": 0}

            reminders = await rows(sessions, select(Notification).where(Notification.kind == "intake_reminder"))
            assert sorted(n.case_id for n in reminders) == due
            shown = await events(sessions, "notification.intake_reminder")
            assert sorted(e.case_id for e in shown) == due  # once per case
            stream = svc.services.progress.stream(due[0], 0)  # what GET /cases/{id}/events serves
            first = (await asyncio.wait_for(anext(stream), timeout=10)).data
            await stream.aclose()
            assert (first["type"], first["payload"]["case_id"]) == ("notification.intake_reminder", due[0])

            digest_tick = TICK + timedelta(days=1)
            ticks = await asyncio.gather(
                *(post_tick(svc.base_url, "notification-digest", digest_tick) for _ in range(2))
            )
            run = await svc.wait(ticks[0].json()["run_id"])
            assert run.status == "completed" and run.result == {"digests": 3, "sent": 3}
            again = await post_tick(svc.base_url, "notification-digest", digest_tick + timedelta(days=1))
            assert (await svc.wait(again.json()["run_id"])).result == {"digests": 0, "sent": 0}

        digests = await rows(sessions, select(Notification).where(Notification.kind == "digest"))
        assert len(gateway.keys) == 4 and Counter(gateway.keys).most_common(1)[0][1] == 2  # one re-send after the 500
        assert sorted(gateway.delivered) == sorted(d.idempotency_key for d in digests)  # each patient's digest, once
        assert {d.state for d in digests} == {"sent"}
        reminders = await rows(sessions, select(Notification).where(Notification.kind == "intake_reminder"))
        by_digest = {d.id: [item["id"] for item in d.payload["items"]] for d in digests}
        assert sorted(i for items in by_digest.values() for i in items) == sorted(n.id for n in reminders)
        assert all(n.state == "digested" and n.id in by_digest[n.digest_id] for n in reminders)
        assert len(await events(sessions, "notification.digest")) == 3


async def test_each_consent_expiring_within_the_window_is_warned_once_across_duplicated_and_repeated_ticks(
    database_url,
):
    async with live_service(database_url, None, **JOB_SETTINGS) as svc:
        sessions = svc.services.sessions
        [case] = await seed(sessions, prefix="cw", cases=1, created=days_ago(30))
        now = datetime.now(UTC)
        async with transaction(sessions) as session:
            await session.execute(
                insert(Provider),
                [
                    {"id": f"prv-{i}", "name": f"H{i}", "webhook_url": "https://h.example", "secret": "whsec_x"}
                    for i in range(4)
                ],
            )
            consent = {"case_id": case, "granted_by": "ops", "granted_at": now - timedelta(days=20)}
            await session.execute(
                insert(Consent),
                [
                    {**consent, "id": "cns-soon", "provider_id": "prv-0", "expires_at": now + timedelta(days=3)},
                    {**consent, "id": "cns-later", "provider_id": "prv-1", "expires_at": now + timedelta(days=30)},
                    {**consent, "id": "cns-gone", "provider_id": "prv-2", "expires_at": now - timedelta(days=1)},
                    {
                        **consent,
                        "id": "cns-revoked",
                        "provider_id": "prv-3",
                        "expires_at": now + timedelta(days=2),
                        "revoked_at": now - timedelta(days=1),
                        "revoked_by": "ops",
                    },
                ],
            )

        ticks = await asyncio.gather(*(post_tick(svc.base_url, "consent-expiry-warnings", TICK) for _ in range(2)))
        assert sorted(r.json()["status"] for r in ticks) == ["duplicate", "started"]
        assert (await svc.wait(ticks[0].json()["run_id"])).result == {"warned": 1}
        again = await post_tick(svc.base_url, "consent-expiry-warnings", TICK + timedelta(days=1))
        assert (await svc.wait(again.json()["run_id"])).result == {"warned": 0}

        warnings = await rows(sessions, select(Notification).where(Notification.kind == "consent_expiry_warning"))
        assert [(w.case_id, w.payload["consent_id"]) for w in warnings] == [(case, "cns-soon")]
        assert len(await events(sessions, "notification.consent_expiry_warning")) == 1
