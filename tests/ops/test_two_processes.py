"""`GET /ops/events?workflow_id=` is exactly the run's events, oldest first, while two service
processes on one database share the deliveries (a random load balancer in front)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import httpx
import pytest
from sqlalchemy import select

from app.config import DEV_OPS_TOKEN
from app.main import build_services
from app.runtime.models import Event
from app.serving import serve_in_loop
from tests.support.process_server import WORKFLOWS
from tests.support.processes import free_port, start_server, stop, wait_healthy
from tests.support.proxy import random_proxy
from tests.support.service import service_settings

pytestmark = pytest.mark.slow

RUNS = 4
EXPECTED = ["workflow.started", *["step.completed"] * 5, "workflow.completed"]


async def test_events_of_each_run_are_exactly_its_own_oldest_first_across_two_processes(database_url, tmp_path):
    ports = [free_port(), free_port()]
    backends = [f"http://127.0.0.1:{p}" for p in ports]
    hits: Counter[str] = Counter()
    async with serve_in_loop(lambda _: random_proxy(backends, hits)) as (proxy_url, _):
        logs = [tmp_path / f"server-{i}.log" for i in range(2)]
        env = {"CURAWAY_TEST_SETTINGS": json.dumps({"embedding_warm_up": False})}
        processes = [start_server(p, database_url, log, proxy_url, env) for p, log in zip(ports, logs, strict=True)]
        services = build_services(service_settings(database_url, proxy_url), WORKFLOWS)
        try:
            for backend, process, log in zip(backends, processes, logs, strict=True):
                for attempt in range(3):  # a busy machine may take over 30 s to import and start
                    try:
                        await wait_healthy(backend, process, log)
                        break
                    except AssertionError as exc:
                        if "did not become healthy" not in str(exc) or attempt == 2:
                            raise
            steps_log = str(tmp_path / "steps.log")
            run_ids = [
                await services.runtime.trigger("five-steps", {"log": steps_log}, labels={"case_id": f"case_{i}"})
                for i in range(RUNS)
            ]
            async with httpx.AsyncClient(base_url=proxy_url, timeout=30) as client:
                ops = {"Authorization": f"Bearer {DEV_OPS_TOKEN}"}
                for run_id in run_ids:
                    for _ in range(600):
                        run = (await client.get(f"/ops/runs/{run_id}", headers=ops)).json()
                        if run["status"] == "completed":
                            break
                        await asyncio.sleep(0.05)
                    assert run["status"] == "completed", [log.read_text()[-2000:] for log in logs]
                served = dict(hits)
                for i, run_id in enumerate(run_ids):
                    events = (await client.get("/ops/events", params={"workflow_id": run_id}, headers=ops)).json()
                    async with services.sessions() as session:
                        rows = list(await session.scalars(select(Event).where(Event.workflow_id == run_id)))
                    assert [e["id"] for e in events] == sorted(row.id for row in rows)
                    assert [e["type"] for e in events] == EXPECTED
                    assert {(e["workflow_id"], e["case_id"]) for e in events} == {(run_id, f"case_{i}")}
                    by_case = (await client.get("/ops/events", params={"case_id": f"case_{i}"}, headers=ops)).json()
                    assert by_case == events
        finally:
            for process in processes:
                stop(process)
            await services.http.aclose()
            await services.engine.dispose()
    assert all(served.get(b, 0) > 5 for b in backends), served  # both processes served deliveries
