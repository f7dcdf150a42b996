"""Cron schedules declared in code: cron evaluation, sync to QStash, and the tick endpoint."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.config import DEV_CURRENT_SIGNING_KEY, PROJECT_ROOT
from app.runtime.context import WorkflowContext
from app.runtime.ids import derived_run_id
from app.runtime.models import Event, WorkflowRun
from app.runtime.registry import workflow
from app.runtime.schedules import Cron, CronError, Schedule, sync_schedules
from app.runtime.signing import sign
from app.runtime.transport import Message
from tests.runtime.workflows import Recorder, record
from tests.support.service import LiveService, live_service

EVERY_SECOND = "* * * * * *"  # six fields, seconds first: only the embedded server fires these


@workflow("scheduled-job")
async def scheduled_job(ctx: WorkflowContext, payload: dict[str, Any]) -> dict[str, Any]:
    await ctx.run("work", record, ctx.deps, ctx.run_id, "work")
    if payload.get("sleep"):
        await ctx.sleep("nap", payload["sleep"])
    return payload


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def scheduled_runs(svc: LiveService, name: str) -> list[WorkflowRun]:
    async with svc.services.sessions() as session:
        query = select(WorkflowRun).where(WorkflowRun.schedule_id == name).order_by(WorkflowRun.created_at)
        return list(await session.scalars(query))


async def events_of_type(svc: LiveService, type_: str) -> list[Event]:
    async with svc.services.sessions() as session:
        return list(await session.scalars(select(Event).where(Event.type == type_).order_by(Event.id)))


async def wait_until(check, *, timeout: float = 20.0) -> Any:  # noqa: ANN001
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := await check()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.1)
    return result


async def post_tick(
    svc: LiveService, name: str, *, tick: int | None = None, key: str = DEV_CURRENT_SIGNING_KEY
) -> httpx.Response:
    """A tick delivery for schedule `name`, signed like QStash signs it."""
    url = f"{svc.base_url}/schedules/{name}"
    body = b"{}"
    headers = {"Upstash-Signature": sign(body, url, key), "Content-Type": "application/json"}
    if tick is not None:
        headers["Upstash-Schedule-Tick"] = str(tick)
    async with httpx.AsyncClient(timeout=30) as http:  # the suite's other clients wait as long on a loaded CI
        return await http.post(url, content=body, headers=headers)


# -- cron expressions and declarations ------------------------------------------------------


def test_cron_is_evaluated_in_its_time_zone_across_daylight_saving():
    cron = Cron.parse("CRON_TZ=America/New_York 30 9 * * *")
    assert cron.next_after(utc("2026-03-07T12:00:00")) == utc("2026-03-07T14:30:00")  # EST
    assert cron.next_after(utc("2026-03-09T12:00:00")) == utc("2026-03-09T13:30:00")  # EDT
    assert Cron.parse("0 9 * * *").next_after(utc("2026-03-09T09:00:00")) == utc("2026-03-10T09:00:00")


def test_latest_fire_time_includes_the_moment_itself_and_six_fields_count_seconds():
    hourly = Cron.parse("0 * * * *")
    assert hourly.latest_at_or_before(utc("2026-05-01T10:00:00")) == utc("2026-05-01T10:00:00")
    assert hourly.latest_at_or_before(utc("2026-05-01T10:59:59.9")) == utc("2026-05-01T10:00:00")
    every_five_seconds = Cron.parse("*/5 * * * * *")
    assert every_five_seconds.next_after(utc("2026-05-01T10:00:01")) == utc("2026-05-01T10:00:05")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"name": "bad/name"}, "schedule name 'bad/name'"),
        ({"cron": "CRON_TZ=UTC 0 * * * *"}, "give the time zone as timezone="),
        ({"cron": "0 * *"}, "has 3 fields"),
        ({"cron": "0 25 * * *"}, "is invalid"),
        ({"timezone": "Nowhere/City"}, "unknown time zone 'Nowhere/City'"),
    ],
)
def test_a_bad_schedule_declaration_fails_with_what_is_wrong(kwargs, error):
    declaration = {"name": "nightly", "cron": "0 3 * * *", "workflow": "w", "payload": {}, **kwargs}
    with pytest.raises(CronError, match=error):
        Schedule(**declaration)


def test_a_schedule_sends_its_zone_in_the_upstash_cron_header():
    schedule = Schedule("digest", "0  8 * * 1-5", "w", {}, timezone="Asia/Kolkata")
    assert schedule.upstash_cron == "CRON_TZ=Asia/Kolkata 0 8 * * 1-5"
    assert schedule.destination("http://x:1/") == "http://x:1/schedules/digest"


# -- sync ----------------------------------------------------------------------------------


async def test_syncing_twice_leaves_one_schedule_per_name_and_deletes_undeclared_ones(database_url):
    declared = [
        Schedule("rates", "0 * * * *", "scheduled-job", {"job": "rates"}),
        Schedule("digest", "0 8 * * *", "scheduled-job", {"job": "digest"}, timezone="Europe/Berlin"),
    ]
    async with live_service(database_url, [scheduled_job], schedules=declared) as svc:
        qstash = svc.services.qstash
        stale = Schedule("retired", "0 0 * * *", "scheduled-job", {})
        await sync_schedules(qstash, [stale], svc.base_url)
        foreign = await qstash.upsert_schedule(Message("https://example.com/other"), "0 0 * * *")

        kept = await sync_schedules(qstash, declared, svc.base_url, prune=False)
        first = await sync_schedules(qstash, declared, svc.base_url)
        second = await sync_schedules(qstash, declared, svc.base_url)

        assert [(r.name, r.action) for r in kept] == [("rates", "upserted"), ("digest", "upserted")]
        assert [(r.name, r.action) for r in first] == [
            ("rates", "upserted"),
            ("digest", "upserted"),
            ("retired", "deleted"),
        ]
        assert [(r.name, r.action) for r in second] == [("rates", "upserted"), ("digest", "upserted")]
        listed = {s["scheduleId"]: s for s in await qstash.list_schedules()}
        assert sorted(listed) == sorted(["rates", "digest", foreign])
        assert listed["digest"]["cron"] == "CRON_TZ=Europe/Berlin 0 8 * * *"
        assert listed["digest"]["destination"] == f"{svc.base_url}/schedules/digest"
        assert listed["rates"]["body"] == '{"job": "rates"}'


async def test_schedules_sync_and_list_commands(database_url):
    async with live_service(database_url, [scheduled_job]) as svc:
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "PUBLIC_BASE_URL": svc.base_url,
            "ENV": "development",
            "QSTASH_URL": "",
        }
        await sync_schedules(svc.services.qstash, [Schedule("retired", "0 0 * * *", "scheduled-job", {})], svc.base_url)

        def curaway(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "app.cli", "schedules", *args],
                cwd=PROJECT_ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )

        listing = await asyncio.to_thread(curaway, "list")
        assert listing.returncode == 0, listing.stderr
        assert "retired" in listing.stdout and "CRON_TZ=UTC 0 0 * * *" in listing.stdout and "active" in listing.stdout
        synced = await asyncio.to_thread(curaway, "sync")
        assert synced.returncode == 0, synced.stderr
        assert "deleted" in synced.stdout and "retired" in synced.stdout
        after = (await asyncio.to_thread(curaway, "list")).stdout
        assert "retired" not in after and "stale-session-cleanup" in after and "Europe/Berlin" in after
        assert "active" in after and "not synced" not in after
        help_text = await asyncio.to_thread(curaway, "--help")
        assert "sync" in help_text.stdout and "list" in help_text.stdout


# -- ticks ---------------------------------------------------------------------------------


async def test_a_schedule_every_second_starts_runs_of_its_workflow(database_url):
    recorder = Recorder()
    heartbeat = Schedule("heartbeat", EVERY_SECOND, "scheduled-job", {"job": "heartbeat"})
    async with live_service(database_url, [scheduled_job], deps=recorder, schedules=[heartbeat]) as svc:
        await sync_schedules(svc.services.qstash, [heartbeat], svc.base_url)

        async def completed() -> list[WorkflowRun]:
            runs = [run for run in await scheduled_runs(svc, "heartbeat") if run.status == "completed"]
            return runs if len(runs) >= 2 else []

        runs = await wait_until(completed)
        await svc.services.qstash.delete_schedule("heartbeat")

        started = {e.workflow_id: e.payload for e in await events_of_type(svc, "workflow.started")}
        for run in runs:
            assert (run.workflow, run.payload) == ("scheduled-job", {"job": "heartbeat"})
            assert run.result == {"job": "heartbeat"}
            assert started[run.id]["schedule"] == "heartbeat"
            assert run.id == derived_run_id("schedule", "heartbeat", started[run.id]["tick"])
            assert recorder.count(run.id, "work") == 1


async def test_a_duplicated_tick_starts_one_run(database_url):
    recorder = Recorder()
    yearly = Schedule("yearly", "0 0 1 1 *", "scheduled-job", {"job": "yearly"})
    async with live_service(database_url, [scheduled_job], deps=recorder, schedules=[yearly]) as svc:
        tick = int(utc("2026-01-01T00:00:00").timestamp())
        first, second = await asyncio.gather(post_tick(svc, "yearly", tick=tick), post_tick(svc, "yearly", tick=tick))

        assert first.status_code == second.status_code == 200
        assert sorted([first.json()["status"], second.json()["status"]]) == ["duplicate", "started"]
        run_id = derived_run_id("schedule", "yearly", "2026-01-01T00:00:00+00:00")
        assert first.json()["run_id"] == second.json()["run_id"] == run_id
        assert (await svc.wait(run_id)).status == "completed"
        again = await post_tick(svc, "yearly", tick=tick)  # a late duplicate, after the run finished
        assert again.json()["status"] == "duplicate"
        assert [run.id for run in await scheduled_runs(svc, "yearly")] == [run_id]
        assert recorder.count(run_id, "work") == 1
        assert len([e for e in await svc.events(run_id) if e.type == "workflow.started"]) == 1


async def test_a_tick_without_the_tick_header_stands_for_the_latest_cron_time(database_url):
    yearly = Schedule("yearly", "0 0 1 1 *", "scheduled-job", {})
    async with live_service(database_url, [scheduled_job], deps=Recorder(), schedules=[yearly]) as svc:
        first = await post_tick(svc, "yearly")  # as real QStash delivers it
        second = await post_tick(svc, "yearly")

        latest = yearly.parsed().latest_at_or_before(datetime.now(UTC))
        run_id = derived_run_id("schedule", "yearly", latest.isoformat())
        assert (first.json()["status"], second.json()["status"]) == ("started", "duplicate")
        assert first.json()["run_id"] == second.json()["run_id"] == run_id
        await svc.wait(run_id)


async def test_ticks_while_a_run_is_unfinished_are_skipped_with_events(database_url):
    recorder = Recorder()
    slow = Schedule("slow-job", EVERY_SECOND, "scheduled-job", {"sleep": 3})
    async with live_service(database_url, [scheduled_job], deps=recorder, schedules=[slow]) as svc:
        await sync_schedules(svc.services.qstash, [slow], svc.base_url)

        async def second_run_started() -> list[WorkflowRun]:
            runs = await scheduled_runs(svc, "slow-job")
            return runs if len(runs) >= 2 else []

        await wait_until(second_run_started, timeout=30)
        await svc.services.qstash.delete_schedule("slow-job")
        runs = await scheduled_runs(svc, "slow-job")
        for run in runs:
            await svc.wait(run.id)
        runs = await scheduled_runs(svc, "slow-job")

        first = runs[0]
        skipped = [e for e in await events_of_type(svc, "job.skipped") if e.workflow_id == first.id]
        assert len(skipped) >= 2  # about one per second while the first run slept
        assert len({e.payload["skipped_run_id"] for e in skipped}) == len(skipped)
        assert {e.payload["running_run_id"] for e in skipped} == {first.id}
        assert not {e.payload["skipped_run_id"] for e in skipped} & {run.id for run in runs}
        for earlier, later in zip(runs, runs[1:], strict=False):
            assert earlier.finished_at is not None and later.created_at >= earlier.finished_at  # never two at once


async def test_a_tick_with_a_bad_signature_is_refused_and_an_unknown_schedule_is_404(database_url):
    yearly = Schedule("yearly", "0 0 1 1 *", "scheduled-job", {})
    async with live_service(database_url, [scheduled_job], deps=Recorder(), schedules=[yearly]) as svc:
        forged = await post_tick(svc, "yearly", key="sig_not_the_signing_key_at_all_00")
        assert forged.status_code == 401
        async with httpx.AsyncClient() as http:
            unsigned = await http.post(f"{svc.base_url}/schedules/yearly", content=b"{}")
        assert unsigned.status_code == 401
        assert await scheduled_runs(svc, "yearly") == []

        unknown = await post_tick(svc, "nope")
        assert unknown.status_code == 404
        assert "no schedule named 'nope'" in unknown.json()["detail"]
