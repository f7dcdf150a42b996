"""The declared job schedules: no overlap (ticks at once, ticks and `curaway jobs run` during a
run), and daily jobs across daylight-saving changes in their zone, fired by the embedded
server's cron loop."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select

from app import cli
from app.config import Settings
from app.db import create_engine, session_factory, transaction
from app.devqstash.models import QStashSchedule
from app.devqstash.scheduler import CronLoop, parse_schedule, upsert
from app.runtime.ids import derived_run_id
from app.workflows.schedules import SCHEDULES
from tests.scheduled_jobs.support import JOB_SETTINGS, events, job_runs, post_tick
from tests.support.service import live_service

TICK = datetime(2026, 6, 1, 9, 20, tzinfo=UTC)


class ManualClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def curaway(capsys: pytest.CaptureFixture[str], settings: Settings, *args: str) -> tuple[int, str, str]:
    """The CLI command `args` in this process (its output captured): (exit status, stdout, stderr)."""
    parsed = cli._parser().parse_args(args)
    capsys.readouterr()
    if parsed.command == "jobs":
        status = await cli._jobs_run(settings, parsed.name)
    else:
        status = await cli._schedules_list(settings, as_json=False)
    out, err = capsys.readouterr()
    return status, out, err


async def test_two_ticks_at_once_start_one_run_and_ticks_or_a_manual_run_meanwhile_are_skipped(database_url, capsys):
    async with live_service(database_url, None, **JOB_SETTINGS) as svc:
        sessions = svc.services.sessions
        assert svc.services.devqstash is not None
        await svc.services.devqstash.stop()  # nothing delivers,
        await svc.runtime.close()  # nor drives a run at once: the first run stays unfinished
        both = await asyncio.gather(
            *(post_tick(svc.base_url, "analytics-refresh", TICK + timedelta(hours=i)) for i in range(2))
        )
        assert sorted(r.json()["status"] for r in both) == ["skipped", "started"]
        [started] = [r.json() for r in both if r.json()["status"] == "started"]
        during = (await post_tick(svc.base_url, "analytics-refresh", TICK + timedelta(hours=2))).json()
        assert (during["status"], during["running_run_id"]) == ("skipped", started["run_id"])
        settings = svc.services.settings
        status, out, _ = await curaway(capsys, settings, "jobs", "run", "analytics-refresh")
        assert status == 1 and f"run {started['run_id']} of analytics-refresh is unfinished" in out

        await svc.services.devqstash.start()
        assert (await svc.wait(started["run_id"])).status == "completed"
        status, out, err = await curaway(capsys, settings, "jobs", "run", "analytics-refresh")
        assert status == 0 and "started analytics-refresh run" in out, err
        unknown = await curaway(capsys, settings, "jobs", "run", "nope")

        runs = await job_runs(sessions, "analytics-refresh")
        assert [r.id for r in runs][0] == started["run_id"] and len(runs) == 2
        await svc.wait(runs[1].id)
        _, listing, _ = await curaway(capsys, settings, "schedules", "list")
        skipped = await events(sessions, "job.skipped")
        assert {e.workflow_id for e in skipped} == {started["run_id"]} and len(skipped) == 3
        assert [e.payload.get("manual", False) for e in skipped] == [False, False, True]
    [row] = [line for line in listing.splitlines() if line.startswith("analytics-refresh")]
    assert "Europe/Berlin" in row and "completed" in row and "not synced" in row
    assert unknown[0] == 2 and "no schedule named 'nope'" in unknown[2]


async def test_a_daylight_saving_change_neither_skips_nor_doubles_a_daily_job(database_url):
    daily = [s for s in SCHEDULES if s.cron.split()[1] != "*"]  # a fixed hour: once a day
    assert {s.name for s in daily} >= {"stale-session-cleanup", "notification-digest", "exchange-rate-refresh"}
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    try:
        for start in (
            datetime(2026, 3, 27, 12, tzinfo=UTC),
            datetime(2026, 10, 23, 12, tzinfo=UTC),
        ):  # Berlin's changes
            clock = ManualClock(start.timestamp())
            loop = CronLoop(sessions=sessions, published=lambda _: None, poll_interval_s=1, clock=clock)
            async with transaction(sessions) as session:
                await session.execute(delete(QStashSchedule))  # a fresh start in each window
                for schedule in daily:
                    headers = [("Upstash-Cron", schedule.upstash_cron), ("Upstash-Schedule-Id", schedule.name)]
                    spec = parse_schedule(
                        schedule.destination("http://127.0.0.1:1"),
                        headers,
                        b"{}",
                        default_retries=3,
                        now=start,
                        caller_ip=None,
                    )
                    await upsert(session, spec, now=start)
            fired: dict[str, list[datetime]] = {s.name: [] for s in daily}
            while clock.now < (start + timedelta(days=3)).timestamp():
                clock.now += 40 * 60
                if not await loop.fire_due():
                    continue
                async with sessions() as session:
                    for row in await session.scalars(select(QStashSchedule)):
                        if row.last_fire_at and (not fired[row.id] or fired[row.id][-1] != row.last_fire_at):
                            fired[row.id].append(row.last_fire_at)
            for schedule in daily:
                zone = schedule.parsed().zone
                local_days = [tick.astimezone(zone).date() for tick in fired[schedule.name]]
                first = start.astimezone(zone).date() + timedelta(days=1)
                assert local_days == [first + timedelta(days=i) for i in range(3)], (
                    schedule.name,
                    fired[schedule.name],
                )
                run_ids = {derived_run_id("schedule", schedule.name, t.isoformat()) for t in fired[schedule.name]}
                assert len(run_ids) == 3
    finally:
        await engine.dispose()


def test_every_schedule_targets_a_served_job_workflow():
    from app.workflows import default_workflows

    served = {w.name for w in default_workflows()}
    assert all(s.workflow in served for s in SCHEDULES)
    assert all(isinstance(s.payload, dict) for s in SCHEDULES)
