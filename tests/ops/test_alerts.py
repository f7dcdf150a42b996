"""Alerts: a failed run, a dead letter and a quota warning become alert events, streamed on
`GET /ops/alerts` and POSTed, signed, to the ops webhook (a real local HTTP server)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json

import httpx
import pytest
from httpx_sse import aconnect_sse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.config import DEV_OPS_TOKEN
from app.runtime.transport import Message
from app.serving import serve_in_loop
from tests.runtime.coordination_workflows import COORDINATION
from tests.runtime.workflows import Recorder
from tests.support.service import live_service

SECRET = "whsec_" + base64.b64encode(b"ops-alerts-test-secret").decode()
WANTED = {"alert.run_failed", "alert.dead_letter", "alert.quota_warning"}


def _ops_webhook(received: list[dict], bad: list[str]) -> Starlette:
    async def hook(request: Request) -> Response:
        body = await request.body()
        h = request.headers
        signed = f"{h['webhook-id']}.{h['webhook-timestamp']}.".encode() + body
        expected = base64.b64encode(hmac.new(base64.b64decode(SECRET[6:]), signed, hashlib.sha256).digest()).decode()
        if h["webhook-signature"] != f"v1,{expected}":
            bad.append(h["webhook-signature"])
            return Response(status_code=401)
        received.append(json.loads(body))
        return Response(status_code=204)

    return Starlette(routes=[Route("/alerts", hook, methods=["POST"])])


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
async def test_a_failed_run_a_dead_letter_and_the_quota_warning_are_streamed_and_sent_signed(database_url):
    received: list[dict] = []
    bad: list[str] = []
    async with serve_in_loop(lambda _: _ops_webhook(received, bad)) as (hook_url, _):
        settings = {
            "ops_alert_webhook_url": f"{hook_url}/alerts",
            "ops_alert_webhook_secret": SECRET,
            "ops_qstash_daily_quota": 2,  # the nap's message and the one to /nowhere reach it
            "ops_alerts_poll_s": 0.2,
            "ops_alerts_dlq_poll_s": 0.2,
            "ops_usage_flush_s": 0.2,
        }
        async with live_service(database_url, COORDINATION, deps=Recorder(), **settings) as svc:
            failed = await svc.runtime.trigger("fails-at-five", {}, labels={"case_id": "case_alert"})
            assert (await svc.wait(failed)).status == "failed"
            # A run driven at once costs no message; a nap hands its run back to QStash: one message.
            napper = await svc.runtime.trigger("sleep-then-step", {"sleep": 0.1})
            assert (await svc.wait(napper)).status == "completed"
            await svc.services.qstash.publish(Message(destination=f"{svc.base_url}/nowhere", body="{}", retries=0))
            streamed: dict[str, dict] = {}
            async with httpx.AsyncClient(base_url=svc.base_url, timeout=30) as client:
                headers = {"Authorization": f"Bearer {DEV_OPS_TOKEN}", "Last-Event-ID": "0"}
                async with aconnect_sse(client, "GET", "/ops/alerts", headers=headers) as source:
                    async with asyncio.timeout(30):
                        async for sse in source.aiter_sse():
                            if sse.event in WANTED:
                                streamed.setdefault(sse.event, json.loads(sse.data))
                            if set(streamed) == WANTED:
                                break
            for _ in range(200):
                if {alert["type"] for alert in received} >= WANTED:
                    break
                await asyncio.sleep(0.05)
    run_failed = streamed["alert.run_failed"]
    assert run_failed["workflow_id"] == failed and run_failed["case_id"] == "case_alert"
    assert "step-5" in run_failed["payload"]["error"]
    assert streamed["alert.dead_letter"]["payload"]["url"].endswith("/nowhere")
    assert streamed["alert.quota_warning"]["payload"]["quota"] == 2
    assert not bad and {alert["type"] for alert in received} >= WANTED
    assert [a["type"] for a in received].count("alert.run_failed") == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_stuck_run_alerts_once_though_two_processes_watch(database_url):
    from app.db import create_engine, session_factory
    from app.ops.alerts import AlertWatcher
    from app.ops.deadletters import DeadLetters
    from app.runtime.models import Event

    engine = create_engine(database_url)
    try:
        sessions = session_factory(engine)
        async with sessions() as session:
            session.add(
                Event(type="workflow.stuck", workflow_id="wfr_stuck", case_id="case_9", payload={"status": "waiting"})
            )
            await session.commit()
        async with httpx.AsyncClient() as http:
            watchers = [AlertWatcher(sessions, DeadLetters([]), http) for _ in range(2)]
            first = await watchers[0].round()
            second = await watchers[1].round()
            restarted = await AlertWatcher(sessions, DeadLetters([]), http).round()
        assert [a.type for a in first] == ["alert.stuck_run"] and second == [] and restarted == []
        payload = first[0].payload
        assert (
            payload["workflow_id"] == "wfr_stuck" and payload["case_id"] == "case_9" and payload["status"] == "waiting"
        )
        assert first[0].workflow_id is None  # the run's own event list is left as it was
    finally:
        await engine.dispose()
