"""`curaway runs|events|usage|dlq`, run as real subprocesses against a live service's database."""

from __future__ import annotations

import json

import pytest

from app.runtime.transport import Message
from tests.runtime.coordination_workflows import COORDINATION
from tests.runtime.workflows import Recorder
from tests.support.service import live_service
from tests.test_cli import _curaway


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_runs_by_case_events_usage_and_dead_letters_in_the_terminal(database_url):
    async with live_service(database_url, COORDINATION, deps=Recorder()) as svc:
        env = {"DATABASE_URL": database_url, "PUBLIC_BASE_URL": svc.base_url, "ENV": "development"}
        failed = await svc.runtime.trigger("fails-at-five", {}, labels={"case_id": "case_cli"})
        assert (await svc.wait(failed)).status == "failed"
        # A run driven at once costs no message; a nap hands the run back to QStash: one message.
        napper = await svc.runtime.trigger("sleep-then-step", {"sleep": 0.1})
        assert (await svc.wait(napper)).status == "completed"
        await svc.services.qstash.publish(Message(destination=f"{svc.base_url}/nowhere", body="{}", retries=0))
        await svc.settled(failed, napper)
        await svc.services.ops.recorder.flush()

        listing = await _curaway("runs", "list", "--case", "case_cli", env=env)
        assert listing.returncode == 0 and failed in listing.stdout and "case_cli" in listing.stdout
        shown = json.loads((await _curaway("runs", "show", failed, "--json", env=env)).stdout)
        assert shown["status"] == "failed" and any(s["status"] == "failed" for s in shown["steps"])
        events = json.loads((await _curaway("events", failed, "--json", env=env)).stdout)
        assert events == shown["events"] and events[-1]["type"] == "workflow.failed"
        usage = json.loads((await _curaway("usage", "--days", "1", "--json", env=env)).stdout)
        assert usage["days"][0]["by_workflow"]["sleep-then-step"] >= 1 and usage["daily_quota"] == 500
        assert "QStash messages per day" in (await _curaway("usage", env=env)).stdout
        letters = await _curaway("dlq", "list", env=env)
        assert letters.returncode == 0 and "/nowhere" in letters.stdout, letters.stderr
        dead_id = next(word for word in letters.stdout.split() if word.startswith("qstash:"))
        replayed = await _curaway("dlq", "replay", dead_id, env=env)
        assert replayed.returncode == 0 and f"replayed {dead_id}" in replayed.stdout
        unknown = await _curaway("dlq", "replay", "qstash:0-0", env=env)
        assert unknown.returncode == 1 and "no dead letter" in unknown.stderr
