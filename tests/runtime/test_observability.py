"""One workflow ID per run: on every event row and on every log line written while it runs."""

from __future__ import annotations

import logging

from tests.runtime.workflows import ALL, Recorder
from tests.support.service import live_service


async def test_log_lines_and_errors_of_a_run_carry_its_workflow_id(database_url, caplog):
    caplog.set_level(logging.INFO)
    async with live_service(database_url, ALL, deps=Recorder()) as svc:
        ok = await svc.runtime.trigger("flaky", {"failures": 1})
        bad = await svc.runtime.trigger("non-retryable", {})
        await svc.wait(ok)
        failed = await svc.wait(bad)
    by_run = {ok: [], bad: []}
    for record in caplog.records:
        if record.name.startswith("app.runtime") and getattr(record, "workflow_id", "-") in by_run:
            by_run[record.workflow_id].append(record.getMessage())
    assert any("attempt 1 failed" in m for m in by_run[ok])
    assert any("completed" in m for m in by_run[ok])
    assert any("failed" in m for m in by_run[bad])
    # Runtime log lines written while driving a run never lack its ID.
    driving = [r for r in caplog.records if r.name == "app.runtime.executor"]
    assert driving and all(r.workflow_id in by_run for r in driving)
    assert failed.error and "password-protected" in failed.error
