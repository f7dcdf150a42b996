"""JSON log lines of a run carry its workflow_id, step, attempt, case_id and document_id."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest

from app.logging import JsonFormatter
from app.runtime.context import WorkflowContext
from app.runtime.registry import workflow
from tests.support.service import live_service

log = logging.getLogger("tests.ops.flaky")
calls: dict[str, int] = {}


def flaky(run_id: str) -> str:  # a sync step: runs in a worker thread
    calls[run_id] = calls.get(run_id, 0) + 1
    log.info("reading the scan")
    if calls[run_id] == 1:
        raise RuntimeError("scanner busy")
    return "ok"


@workflow("logged")
async def logged(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
    return await ctx.run("read-scan", flaky, ctx.run_id)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_every_json_line_of_a_step_names_the_run_step_attempt_case_and_document(database_url):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    level, root.level = root.level, logging.INFO
    try:
        async with live_service(database_url, [logged], embedding_warm_up=False) as svc:
            run_id = await svc.runtime.trigger("logged", {}, labels={"case_id": "case_1", "document_id": "doc_1"})
            assert (await svc.wait(run_id)).status == "completed"
    finally:
        root.removeHandler(handler)
        root.level = level
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    scans = [line for line in lines if line["message"] == "reading the scan"]
    assert [(s["step"], s["attempt"]) for s in scans] == [("read-scan", 1), ("read-scan", 2)]
    assert all(s["workflow_id"] == run_id and s["case_id"] == "case_1" and s["document_id"] == "doc_1" for s in scans)
    [failure] = [line for line in lines if "scanner busy" in line["message"]]
    assert failure["level"] == "WARNING" and failure["attempt"] == 1 and failure["workflow_id"] == run_id
