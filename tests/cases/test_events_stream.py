"""`GET /cases/{id}/events`: live progress over SSE, resumable with Last-Event-ID."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest

from app.db import transaction
from app.demo.stream import read_events
from app.runtime.events import record_event
from tests.support.api import Api
from tests.support.service import live_service


async def _emit(svc, case_id: str, count: int, start: int = 0) -> None:
    async with transaction(svc.services.sessions) as session:
        for i in range(start, start + count):
            record_event(session, "document.ocr_completed", case_id=case_id, document_id=f"doc_{i}", payload={"i": i})


async def _collect(client: httpx.AsyncClient, url: str, count: int, headers: dict[str, str] | None = None) -> list:
    events = []
    async with client.stream("GET", url, headers=headers or {}, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for event in read_events(response):
            events.append(event)
            if len(events) == count:
                break
    return events


async def test_reconnecting_with_last_event_id_misses_nothing_and_repeats_nothing(database_url):
    async with (
        live_service(database_url, None, progress_poll_s=0.05) as svc,
        httpx.AsyncClient(base_url=svc.base_url) as client,
    ):
        api = Api(client)
        _, case, token = await api.new_case()
        url = f"/cases/{case['id']}/events?access_token={token}"  # as a browser EventSource would
        await _emit(svc, case["id"], 3)
        first = asyncio.create_task(_collect(client, url, 5))
        await _await(lambda: svc.services.progress.clients == 1, "the client to subscribe")
        await _emit(svc, case["id"], 4, start=3)  # two arrive live, then the client disconnects
        seen = await asyncio.wait_for(first, 10)
        await _emit(svc, case["id"], 3, start=7)  # while disconnected
        rest = await asyncio.wait_for(_collect(client, url, 5, headers={"Last-Event-ID": seen[-1].id}), 10)
        ids = [int(e.id) for e in seen + rest]
        assert ids == sorted(ids) and len(ids) == len(set(ids)) == 10
        assert [e.json()["payload"]["i"] for e in seen + rest] == list(range(10))
        assert all(e.event == "document.ocr_completed" and e.json()["case_id"] == case["id"] for e in seen + rest)


async def test_events_of_other_cases_and_runtime_events_are_not_streamed(database_url):
    async with (
        live_service(database_url, None, progress_poll_s=0.05) as svc,
        httpx.AsyncClient(base_url=svc.base_url) as client,
    ):
        api = Api(client)
        _, case, token = await api.new_case()
        _, other, _ = await api.new_case(name="Other")
        async with transaction(svc.services.sessions) as session:
            record_event(session, "step.completed", case_id=case["id"], payload={})
            record_event(session, "document.analyzed", case_id=other["id"], document_id="doc_o", payload={})
            record_event(session, "document.analyzed", case_id=case["id"], document_id="doc_a", payload={})
        events = await asyncio.wait_for(_collect(client, f"/cases/{case['id']}/events", 1, api.auth(token)), 10)
        assert [(e.event, e.json()["document_id"]) for e in events] == [("document.analyzed", "doc_a")]


async def test_keep_alive_pings_are_sent(database_url):
    async with (
        live_service(database_url, None, sse_ping_s=0.2) as svc,
        httpx.AsyncClient(base_url=svc.base_url) as client,
    ):
        api = Api(client)
        _, case, token = await api.new_case()
        async with client.stream("GET", f"/cases/{case['id']}/events", headers=api.auth(token), timeout=10) as response:
            lines = []
            async for line in response.aiter_lines():
                lines.append(line)
                if sum(1 for text in lines if text.startswith(":")) >= 2:
                    break
        assert any(line.startswith(": ping") or line.startswith(":") for line in lines)


async def test_events_written_by_another_process_reach_the_stream(database_url):
    from app.db import create_engine, session_factory

    async with (
        live_service(database_url, None, progress_poll_s=0.05) as svc,
        httpx.AsyncClient(base_url=svc.base_url) as client,
    ):
        api = Api(client)
        _, case, token = await api.new_case()
        listening = asyncio.create_task(_collect(client, f"/cases/{case['id']}/events", 2, api.auth(token)))
        await _await(lambda: svc.services.progress.clients == 1, "the client to subscribe")
        other = create_engine(database_url)  # its own engine and connections, as another process has
        try:
            async with transaction(session_factory(other)) as session:
                record_event(session, "document.ocr_completed", case_id=case["id"], document_id="doc_elsewhere")
                record_event(session, "document.analyzed", case_id=case["id"], document_id="doc_elsewhere")
        finally:
            await other.dispose()
        events = await asyncio.wait_for(listening, 10)
        assert [e.event for e in events] == ["document.ocr_completed", "document.analyzed"]


async def _await(condition, what: str, timeout: float = 10) -> None:  # noqa: ANN001
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_a_committed_event_wakes_the_feed_at_once_without_waiting_for_the_poll(database_url):
    """With a 60 s poll, only the commit hook (or Postgres' NOTIFY) can bring the event in time."""
    async with (
        live_service(database_url, None, progress_poll_s=60) as svc,
        httpx.AsyncClient(base_url=svc.base_url) as client,
    ):
        api = Api(client)
        _, case, token = await api.new_case()
        listening = asyncio.create_task(_collect(client, f"/cases/{case['id']}/events", 2, api.auth(token)))
        await _await(lambda: svc.services.progress.clients == 1, "the client to subscribe")
        await _emit(svc, case["id"], 2)
        events = await asyncio.wait_for(listening, 10)
        assert [e.json()["payload"]["i"] for e in events] == [0, 1]


INSERT = (
    "INSERT INTO events (case_id, document_id, type, payload, created_at) "
    "VALUES ($1, $2, 'document.ocr_completed', '{}'::jsonb, now()) RETURNING id"
)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_postgres_notify_wakes_the_feed_for_a_commit_made_outside_this_process(database_url):
    async with (
        live_service(database_url, None, progress_poll_s=60) as svc,
        httpx.AsyncClient(base_url=svc.base_url) as client,
    ):
        api = Api(client)
        _, case, token = await api.new_case()
        listening = asyncio.create_task(_collect(client, f"/cases/{case['id']}/events", 1, api.auth(token)))
        await _await(lambda: svc.services.progress.clients == 1, "the client to subscribe")
        other = await asyncpg.connect(database_url)  # no SQLAlchemy session: no in-process hook fires
        try:
            await other.fetchval(INSERT, case["id"], "doc_elsewhere")
        finally:
            await other.close()
        events = await asyncio.wait_for(listening, 10)
        assert [e.json()["document_id"] for e in events] == ["doc_elsewhere"]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_smaller_id_committed_later_is_still_streamed_first(database_url):
    """IDs are taken at insert, visible at commit: the feed holds a row behind a young gap."""
    async with live_service(database_url, None) as svc, httpx.AsyncClient(base_url=svc.base_url) as client:
        api = Api(client)
        _, case, token = await api.new_case()
        listening = asyncio.create_task(_collect(client, f"/cases/{case['id']}/events", 2, api.auth(token)))
        await _await(lambda: svc.services.progress.clients == 1, "the client to subscribe")
        slow, fast = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
        try:
            transaction = slow.transaction()
            await transaction.start()
            first = await slow.fetchval(INSERT, case["id"], "doc_first")
            second = await fast.fetchval(INSERT, case["id"], "doc_second")  # commits at once
            assert second == first + 1
            await _await(lambda: svc.services.progress.waiting_at_gap, "the feed to stop at the gap")
            await transaction.commit()
        finally:
            await slow.close()
            await fast.close()
        events = await asyncio.wait_for(listening, 10)
        assert [(int(e.id), e.json()["document_id"]) for e in events] == [(first, "doc_first"), (second, "doc_second")]
