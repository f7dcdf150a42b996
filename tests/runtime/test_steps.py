"""The runtime core end to end: real app, real embedded QStash, real HTTP, real databases."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.runtime.workflows import ALL, Recorder
from tests.support.service import live_service


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


async def test_seven_step_workflow_completes_and_its_steps_are_events_in_order(database_url, recorder):
    async with live_service(database_url, ALL, deps=recorder) as svc:
        run_id = await svc.runtime.trigger("seven-steps", {})
        run = await svc.wait(run_id)
        assert run.status == "completed"
        assert run.result == [f"step-{i}" for i in range(1, 8)]
        events = await svc.events(run_id)
        completed = [e.payload["step"] for e in events if e.type == "step.completed"]
        assert completed == [f"step-{i}" for i in range(1, 8)]
        assert events[0].type == "workflow.started" and events[-1].type == "workflow.completed"
        assert all(e.workflow_id == run_id for e in events)
        assert [e.id for e in events] == sorted(e.id for e in events)
        assert recorder.order[run_id] == [f"step-{i}" for i in range(1, 8)]


async def test_step_failing_twice_then_succeeding_keeps_earlier_steps_and_records_attempts(database_url, recorder):
    async with live_service(database_url, ALL, deps=recorder) as svc:
        run_id = await svc.runtime.trigger("flaky", {"failures": 2})
        run = await svc.wait(run_id)
        assert run.status == "completed", run.error
        assert run.result == "succeeded on attempt 3"
        assert recorder.count(run_id, "before") == 1
        assert recorder.count(run_id, "flaky") == 3
        assert recorder.count(run_id, "after") == 1
        flaky_events = [(e.type, e.payload.get("attempt")) for e in await svc.events(run_id) if e.payload.get("step") == "flaky"]
        assert flaky_events == [
            ("step.failed", 1),
            ("step.retry_scheduled", 1),
            ("step.failed", 2),
            ("step.retry_scheduled", 2),
            ("step.completed", 3),
        ]
        failed = [e for e in await svc.events(run_id) if e.type == "step.failed"]
        assert "ConnectionError: flaky failure 1" in failed[0].payload["error"]


async def test_non_retryable_error_fails_the_run_at_once_and_runs_on_failure(database_url, recorder):
    async with live_service(database_url, ALL, deps=recorder) as svc:
        run_id = await svc.runtime.trigger("non-retryable", {})
        run = await svc.wait(run_id)
        assert run.status == "failed"
        assert recorder.count(run_id, "refuse") == 1
        assert recorder.count(run_id, "never") == 0
        assert "password-protected" in run.error
        assert "password-protected" in recorder.failures[run_id]
        types = [e.type for e in await svc.events(run_id)]
        assert "step.retry_scheduled" not in types
        assert types[-1] == "workflow.failed"
        steps = await svc.steps(run_id)
        assert [(s.name, s.status) for s in steps] == [("on_failure", "completed"), ("refuse", "failed")]


async def test_exhausted_retries_fail_the_run_and_run_on_failure(database_url, recorder):
    async with live_service(database_url, ALL, deps=recorder) as svc:
        run_id = await svc.runtime.trigger("exhausts-retries", {})
        run = await svc.wait(run_id)
        assert run.status == "failed"
        assert recorder.count(run_id, "always-fails") == 3  # first attempt + 2 retries
        assert "upstream is down" in recorder.failures[run_id]
        failed = [e for e in await svc.events(run_id) if e.type == "workflow.failed"]
        assert len(failed) == 1 and "upstream is down" in failed[0].payload["error"]


async def test_code_changed_under_a_running_run_fails_with_non_determinism_naming_the_step(database_url, recorder):
    async with live_service(database_url, ALL, deps=recorder) as svc:
        run_id = await svc.runtime.trigger("changes-under-run", {"pause": 1.0})
        await svc.wait(run_id, statuses={"sleeping"})
        recorder.version = 2  # a deploy renamed the first step while the run sleeps
        run = await svc.wait(run_id)
        assert run.status == "failed"
        assert "NonDeterminism" in recorder.failures[run_id] or "extract" in recorder.failures[run_id]
        assert "'extract'" in run.error and "'extract-v2'" in run.error
        assert recorder.count(run_id, "finish") == 0


async def test_hanging_step_times_out_and_is_retried_while_healthz_answers_through_cpu_work(database_url, recorder):
    async with live_service(database_url, ALL, deps=recorder) as svc:
        run_id = await svc.runtime.trigger("hang-then-burn", {"burn": 3.0})
        answered_during_burn = 0
        async with httpx.AsyncClient(base_url=svc.base_url) as client:
            while (status := (await svc.run(run_id)).status) not in ("completed", "failed"):
                burning = recorder.count(run_id, "burn") == 1 and status == "running"
                response = await client.get("/healthz", timeout=5)
                assert response.status_code == 200
                answered_during_burn += burning
                await asyncio.sleep(0.05)
        run = await svc.run(run_id)
        assert run.status == "completed", run.error
        assert run.result == "attempt 2"
        assert recorder.count(run_id, "hang") == 2
        assert recorder.count(run_id, "burn") == 1
        # A loop blocked by the burn could answer once at most (right after it); it answered more.
        assert answered_during_burn >= 2
        failed = [e for e in await svc.events(run_id) if e.type == "step.failed"]
        assert "timed out after 0.5 s" in failed[0].payload["error"]


async def test_sleep_resumes_after_the_duration_without_holding_a_request(database_url, recorder):
    async with live_service(database_url, ALL, deps=recorder) as svc:
        run_id = await svc.runtime.trigger("sleeper", {"seconds": 2})
        sleeping = await svc.wait(run_id, statuses={"sleeping"})
        for _ in range(20):  # the delivery that put it to sleep ends at once and gives the lease back
            if sleeping.lease_owner is None:
                break
            await asyncio.sleep(0.05)
            sleeping = await svc.run(run_id)
        assert sleeping.status == "sleeping" and sleeping.lease_owner is None  # no request held open
        run = await svc.wait(run_id)
        assert run.status == "completed", run.error
        assert run.result >= 2.0
        types = [e.type for e in await svc.events(run_id)]
        assert "workflow.sleeping" in types


async def test_step_output_over_the_limit_fails_with_a_clear_error(database_url, recorder):
    async with live_service(database_url, ALL, deps=recorder, workflow_max_step_output_bytes=1024) as svc:
        run_id = await svc.runtime.trigger("too-big", {})
        run = await svc.wait(run_id)
        assert run.status == "failed"
        assert "WORKFLOW_MAX_STEP_OUTPUT_BYTES=1024" in run.error


async def test_trigger_twice_with_one_run_id_starts_one_run(database_url, recorder):
    async with live_service(database_url, ALL, deps=recorder) as svc:
        first = await svc.runtime.trigger("seven-steps", {}, run_id="wfr_same_id_twice")
        second = await svc.runtime.trigger("seven-steps", {}, run_id="wfr_same_id_twice")
        assert first == second == "wfr_same_id_twice"
        await svc.wait(first)
        await svc.settled(first)  # a second start message would have been delivered by now
        assert all(recorder.count(first, f"step-{i}") == 1 for i in range(1, 8))
        started = [e for e in await svc.events(first) if e.type == "workflow.started"]
        assert len(started) == 1
