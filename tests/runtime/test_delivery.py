"""At-least-once delivery, durable calls and inline continuation."""

from __future__ import annotations

from collections import Counter

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.runtime.workflows import ALL, Recorder
from tests.support.duplicator import DuplicateDeliveries
from tests.support.live import serve
from tests.support.service import live_service, non_serving


@pytest.mark.parametrize("inline_budget_ms", [0, 2000])
async def test_every_message_delivered_twice_concurrently_runs_and_records_each_step_once(
    database_url, inline_budget_ms
):
    recorder = Recorder()
    wrappers: list[DuplicateDeliveries] = []

    def wrap(app):
        wrappers.append(DuplicateDeliveries(app))
        return wrappers[-1]

    async with (
        live_service(database_url, ALL, deps=recorder, wrap=wrap, workflow_inline_budget_ms=inline_budget_ms) as svc,
        non_serving(svc, ALL, deps=recorder) as other,  # its runs start with a message, not an eager drive
    ):
        run_ids = [await other.runtime.trigger("seven-steps", {}) for _ in range(3)]
        for run_id in run_ids:
            assert (await svc.wait(run_id)).status == "completed"
        await svc.settled(*run_ids)  # every message, twice: a copy may come after the run finished
        for run_id in run_ids:
            assert [recorder.count(run_id, f"step-{i}") for i in range(1, 8)] == [1] * 7
            completed = Counter(e.payload["step"] for e in await svc.events(run_id) if e.type == "step.completed")
            assert completed == {f"step-{i}": 1 for i in range(1, 8)}
            assert len(await svc.steps(run_id)) == 7
        assert wrappers[0].duplicated >= len(run_ids)


def _third_party() -> FastAPI:
    api = FastAPI()

    @api.post("/ok")
    async def ok(request: Request) -> JSONResponse:
        return JSONResponse(
            {"echo": await request.json(), "token": request.headers.get("x-token")},
            headers={"X-Answer": "42"},
        )

    @api.get("/broken")
    async def broken() -> JSONResponse:
        return JSONResponse({"error": "boom"}, status_code=500)

    return api


async def test_call_returns_status_headers_and_body_and_a_500_is_returned_not_raised(database_url):
    async with (
        serve(lambda _: _third_party()) as (third_party, _),
        live_service(database_url, ALL, deps=Recorder()) as svc,
    ):
        run_id = await svc.runtime.trigger(
            "caller", {"ok_url": f"{third_party}/ok", "broken_url": f"{third_party}/broken"}
        )
        run = await svc.wait(run_id)
        assert run.status == "completed", run.error
        ok, broken = run.result["ok"], run.result["broken"]
        assert ok["status"] == 200
        assert ok["headers"]["x-answer"] == "42"
        assert '"echo":{"q":1}' in ok["body"].replace(" ", "") and '"token":"abc"' in ok["body"].replace(" ", "")
        assert broken["status"] == 500 and "boom" in broken["body"]
        types = [e.type for e in await svc.events(run_id)]
        assert types.count("workflow.waiting") == 2


async def _messages_to(svc, path: str) -> int:
    from sqlalchemy import func, select

    from app.devqstash.models import EventState, QStashEvent

    async with svc.services.sessions() as session:
        return await session.scalar(
            select(func.count())
            .select_from(QStashEvent)
            .where(QStashEvent.state == EventState.CREATED, QStashEvent.url.like(f"%{path}"))
        )


async def test_inline_continuation_cuts_messages_per_run(database_url):
    counts = {}
    for budget in (0, 10_000):
        async with live_service(database_url, ALL, deps=Recorder(), workflow_inline_budget_ms=budget) as svc:
            before = await _messages_to(svc, "/workflows/seven-steps")
            run_id = await svc.runtime.trigger("seven-steps", {})
            assert (await svc.wait(run_id)).status == "completed"
            counts[budget] = await _messages_to(svc, "/workflows/seven-steps") - before
    # The serving process drives the run at once, without a message; with no inline budget each
    # later step is handed back to QStash, one message each.
    assert counts[0] == 6
    assert counts[10_000] == 0  # the eager drive carries all seven steps


async def test_a_call_answer_over_the_output_limit_fails_the_call_step_clearly(database_url):
    def large() -> FastAPI:
        api = FastAPI()

        @api.post("/ok")
        async def ok() -> JSONResponse:
            return JSONResponse({"blob": "x" * 4000})

        return api

    async with (
        serve(lambda _: large()) as (third_party, _),
        live_service(database_url, ALL, deps=Recorder(), workflow_max_step_output_bytes=2048) as svc,
    ):
        run_id = await svc.runtime.trigger("caller", {"ok_url": f"{third_party}/ok", "broken_url": f"{third_party}/ok"})
        run = await svc.wait(run_id)
        assert run.status == "failed"
        assert run.failure["step"] == "fetch" and run.failure["error_type"] == "CallFailed"
        assert "WORKFLOW_MAX_STEP_OUTPUT_BYTES=2048" in run.error
