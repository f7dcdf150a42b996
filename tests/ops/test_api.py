"""The ops API's access control, dead letters, usage quota warning, /metrics and /readyz."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select

from app.config import DEV_OPS_TOKEN
from app.db import create_engine, session_factory
from app.main import create_app
from app.ops.console import router as console_router
from app.ops.router import router as ops_router
from app.ops.usage import QUOTA_WARNING, Quota, UsageRecorder, usage_rows, workflow_of
from app.runtime.models import Event
from app.runtime.transport import Message
from tests.support.service import live_service, service_settings


def _ops_routes() -> list[tuple[str, str]]:
    routes = []
    for route in [*ops_router.routes, *console_router.routes]:
        path = route.path.replace("{run_id}", "wfr_x").replace("{dead_letter_id}", "qstash:1").replace("{path}", "x")
        routes += [(method, path) for method in sorted(route.methods) if method != "HEAD"]
    return routes


async def test_every_ops_route_refuses_a_missing_token_401_and_a_patient_token_403(tmp_path, sqlite_templates):
    app = create_app(service_settings(sqlite_templates.fresh(tmp_path), "http://127.0.0.1:9"))
    patient = app.state.services.tokens.issue("patient:pat_1")
    routes = _ops_routes()
    assert len(routes) >= 8 and ("GET", "/ops/usage") in routes
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client:
        for method, path in routes:
            anonymous = await client.request(method, path)
            assert anonymous.status_code == 401, (method, path, anonymous.text)
            refused = await client.request(method, path, headers={"Authorization": f"Bearer {patient}"})
            assert refused.status_code == 403, (method, path, refused.text)
        bad = await client.get("/ops/events", headers={"Authorization": f"Bearer {DEV_OPS_TOKEN}"})
        assert bad.status_code == 400 and "workflow_id" in bad.json()["detail"]
        ops = {"Authorization": f"Bearer {DEV_OPS_TOKEN}"}
        missing = await client.get("/ops/runs/wfr_nope", headers=ops)
        assert missing.status_code == 404
        bogus = await client.get("/ops/runs", params={"status": "bogus"}, headers=ops)
        assert bogus.status_code == 400 and "failed" in bogus.json()["detail"]
        naive = await client.get(
            "/ops/runs", params={"from": "2026-01-01T00:00", "to": "2099-01-01T00:00"}, headers=ops
        )
        assert naive.status_code == 200 and naive.json() == {"items": [], "next_cursor": None}
        assert (await client.get("/ops/runs", params={"cursor": "nonsense"}, headers=ops)).status_code == 400
    await app.state.services.engine.dispose()
    await app.state.services.http.aclose()


async def test_readyz_names_qstash_when_it_does_not_answer(tmp_path, sqlite_templates):
    settings = service_settings(
        sqlite_templates.fresh(tmp_path), "http://127.0.0.1:9", qstash_url="http://127.0.0.1:9", devqstash_enabled=False
    )
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client:
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["failing"] == ["qstash"] and response.json()["checks"]["database"] == "ok"
        assert (await client.get("/healthz")).status_code == 200
    await app.state.services.engine.dispose()
    await app.state.services.http.aclose()


async def test_a_dead_letter_is_listed_replayed_and_counted_in_metrics(database_url):
    async with (
        live_service(database_url, [], embedding_warm_up=False) as svc,
        httpx.AsyncClient(base_url=svc.base_url) as client,
    ):
        ops = {"Authorization": f"Bearer {DEV_OPS_TOKEN}"}
        assert (await client.get("/readyz")).json() == {"status": "ready", "checks": {"database": "ok", "qstash": "ok"}}
        await svc.services.qstash.publish(Message(destination=f"{svc.base_url}/nowhere", body="{}", retries=0))
        for _ in range(200):
            listed = (await client.get("/ops/dlq", headers=ops)).json()
            if listed["items"]:
                break
            await asyncio.sleep(0.05)
        [letter] = listed["items"]
        assert letter["id"].startswith("qstash:") and letter["url"].endswith("/nowhere")
        assert letter["response_status"] == 404
        metrics = (await client.get("/metrics")).text
        assert 'curaway_dead_letters{source="qstash"} 1.0' in metrics
        assert 'curaway_qstash_messages_published_total{workflow="other"} 1.0' in metrics
        replayed = await client.post(f"/ops/dlq/{letter['id']}/replay", headers=ops)
        assert replayed.status_code == 200 and replayed.json()["message_id"]
        assert (await client.post("/ops/dlq/qstash:0-0/replay", headers=ops)).status_code == 404
        assert (await client.post("/ops/dlq/nosource/replay", headers=ops)).status_code == 400


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_day_past_80_percent_of_the_quota_warns_once(database_url):
    engine = create_engine(database_url)
    try:
        sessions = session_factory(engine)
        now = datetime(2026, 12, 3, 12, tzinfo=UTC)
        recorder = UsageRecorder(sessions, Quota(daily=10), clock=lambda: now)
        recorder.count_message("document-analysis", 7)
        await recorder.flush()
        recorder.count_message("webhook-delivery")
        await recorder.flush()
        recorder.count_message("webhook-delivery", 5)
        await recorder.flush()
        async with sessions() as session:
            warnings = list(await session.scalars(select(Event).where(Event.type == QUOTA_WARNING)))
        assert [w.payload["day"] for w in warnings] == ["2026-12-03"] and warnings[0].payload["messages"] == 8
    finally:
        await engine.dispose()


async def test_a_flush_waits_for_the_one_under_way_so_a_read_after_it_sees_every_count(database_url):
    engine = create_engine(database_url)
    try:
        sessions = session_factory(engine)
        recorder = UsageRecorder(sessions, Quota(daily=500))
        recorder.count_message("document-analysis", 3)
        periodic = asyncio.create_task(recorder.flush())  # takes the counts, then writes them
        await asyncio.sleep(0)
        await recorder.flush()  # what /ops/usage does before it reads: nothing of its own to add
        async with sessions() as session:
            rows = await usage_rows(session, since="2000-01-01")
        assert [(row.workflow, row.messages) for row in rows] == [("document-analysis", 3)]
        await periodic
    finally:
        await engine.dispose()


def test_a_message_counts_for_the_workflow_of_its_destination_or_callback():
    base = "https://curaway.example"
    assert workflow_of(Message(destination=f"{base}/workflows/document-analysis")) == "document-analysis"
    call = Message(
        destination="https://hospital.example/hook", callback=f"{base}/workflows/webhook-delivery/call-result"
    )
    assert workflow_of(call) == "webhook-delivery"
    assert workflow_of(Message(destination=f"{base}/schedules/rates")) == "schedule:rates"
    assert workflow_of(Message(destination="https://elsewhere.example/x")) == "other"
