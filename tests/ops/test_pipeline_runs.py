"""Ops see a document's whole pipeline run: steps, each attempt and its error, events; retry; usage.

One document's `clinical-extract` fails twice then succeeds; another's fails for good, is
retried through `POST /ops/runs/{id}/retry` and completes without repeating OCR. `/ops/usage`
agrees with the messages the embedded QStash took for the pipeline.
"""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from app.devqstash.models import EventState, QStashEvent
from app.serving import serve_in_loop
from tests.documents.test_pipeline_failures import _cardiology_answer
from tests.support.api import Api
from tests.support.outside import FakeEmbeddings, FakeLLM
from tests.support.pipeline import wait_document
from tests.support.service import live_service

SEVEN = ["confirm-upload", "ocr", "clinical-extract", "fhir-validate", "embedding-match", "ehr-rebuild", "sse-notify"]


async def test_failed_then_recovered_and_failed_for_good_runs_are_shown_retried_and_counted(database_url):
    llm = FakeLLM(_cardiology_answer(), failures=2)
    embeddings = FakeEmbeddings()  # hashed vectors over HTTP: the local model's CPU is not what is tested here
    async with (
        serve_in_loop(lambda _: llm.app()) as (llm_url, _),
        serve_in_loop(lambda _: embeddings.app()) as (emb_url, _),
    ):
        overrides = {
            "embedding_backend": "api",
            "embedding_api_url": f"{emb_url}/v1",
            "embedding_model": "fake",
            "embedding_warm_up": False,
            "extractor": "llm",
            "llm_base_url": f"{llm_url}/v1",
            "llm_api_key": "sk-test",
            "llm_model": "fake",
            "llm_max_retries": 0,
            "workflow_default_retries": 2,
            "workflow_retry_base_delay_s": 0.1,
        }
        async with (
            live_service(database_url, None, **overrides) as svc,
            httpx.AsyncClient(base_url=svc.base_url) as client,
        ):
            api = Api(client)
            _, case, token = await api.new_case("cabg")
            recovered = (await api.upload(case["id"], token, "discharge_summary_cardiology.pdf")).json()
            assert (await wait_document(api, recovered["document_id"], token))["status"] == "analyzed"
            llm.failures = llm.requests + 100
            failed = (await api.upload(case["id"], token, "discharge_summary_cardiology.pdf")).json()
            assert (await wait_document(api, failed["document_id"], token))["status"] == "failed"
            run_a, run_b = recovered["workflow_run_id"], failed["workflow_run_id"]

            # Found by document, by case (newest first, cursor paging), by status.
            by_doc = (
                await client.get("/ops/runs", params={"document_id": recovered["document_id"]}, headers=api.ops)
            ).json()
            assert [r["id"] for r in by_doc["items"]] == [run_a] and by_doc["next_cursor"] is None
            page1 = (await client.get("/ops/runs", params={"case_id": case["id"], "limit": 1}, headers=api.ops)).json()
            page2 = (
                await client.get(
                    "/ops/runs",
                    params={"case_id": case["id"], "limit": 1, "cursor": page1["next_cursor"]},
                    headers=api.ops,
                )
            ).json()
            assert [r["id"] for r in page1["items"] + page2["items"]] == [run_b, run_a] and page2["next_cursor"] is None
            failed_runs = (await client.get("/ops/runs", params={"status": "failed"}, headers=api.ops)).json()
            assert [r["id"] for r in failed_runs["items"]] == [run_b]

            # The recovered run: seven steps, clinical-extract with each attempt and its error.
            detail = (await client.get(f"/ops/runs/{run_a}", headers=api.ops)).json()
            assert detail["status"] == "completed" and detail["document_id"] == recovered["document_id"]
            assert [s["name"] for s in detail["steps"]] == SEVEN
            extract = detail["steps"][2]
            assert extract["attempts"] == 3 and extract["status"] == "completed"
            history = [(a["attempt"], a["outcome"]) for a in extract["attempt_history"]]
            assert history == [(1, "failed"), (2, "failed"), (3, "completed")]
            assert all("500" in a["error"] or "overloaded" in a["error"] for a in extract["attempt_history"][:2])
            assert detail["steps"][1]["attempts"] == 1 and detail["steps"][1]["duration_ms"] is not None
            ids = [e["id"] for e in detail["events"]]
            types = [e["type"] for e in detail["events"]]
            assert ids == sorted(ids) and types.index("workflow.started") < types.index("workflow.completed")
            failures = [e["payload"]["attempt"] for e in detail["events"] if e["type"] == "step.failed"]
            assert failures == [1, 2] and types.count("step.completed") == 7

            # The failed run: clinical-extract failed on every attempt, on_failure ran.
            detail_b = (await client.get(f"/ops/runs/{run_b}", headers=api.ops)).json()
            assert detail_b["status"] == "failed" and "clinical-extract" in detail_b["error"]
            extract_b = next(s for s in detail_b["steps"] if s["name"] == "clinical-extract")
            assert [a["outcome"] for a in extract_b["attempt_history"]] == ["failed"] * 3
            assert all(a["error"] for a in extract_b["attempt_history"])
            events = (await client.get("/ops/events", params={"workflow_id": run_b}, headers=api.ops)).json()
            assert events == detail_b["events"] and {e["workflow_id"] for e in events} == {run_b}
            assert [e["id"] for e in events] == sorted(e["id"] for e in events)
            assert set(events[0]) == {"id", "type", "workflow_id", "case_id", "document_id", "payload", "created_at"}
            by_doc_events = (
                await client.get("/ops/events", params={"document_id": failed["document_id"]}, headers=api.ops)
            ).json()
            assert {e["document_id"] for e in by_doc_events} == {failed["document_id"]}

            # Retry: completes at the failed step; OCR is not repeated.
            llm.failures = 0
            retried = await client.post(f"/ops/runs/{run_b}/retry", headers=api.ops)
            assert retried.status_code == 200, retried.text
            assert (await svc.wait(run_b)).status == "completed"
            assert (await wait_document(api, failed["document_id"], token))["status"] == "analyzed"
            detail_b = (await client.get(f"/ops/runs/{run_b}", headers=api.ops)).json()
            assert next(s for s in detail_b["steps"] if s["name"] == "ocr")["attempts"] == 1
            again = await client.post(f"/ops/runs/{run_b}/retry", headers=api.ops)
            assert again.status_code == 409, again.text
            # Cancel: a finished run is left alone (and on SQLite the request's own read does not
            # hold the write lock the runtime's cancel needs); an unknown run is 404.
            finished = await client.post(f"/ops/runs/{run_b}/cancel", headers=api.ops)
            assert finished.status_code == 200 and finished.json()["cancelled"] == [], finished.text
            unknown = await client.post("/ops/runs/wfr_nobody/cancel", headers=api.ops)
            assert unknown.status_code == 404, unknown.text

            # Usage agrees with what the embedded QStash took for the pipeline.
            await svc.settled(run_a, run_b)
            usage = (await client.get("/ops/usage", params={"days": 2}, headers=api.ops)).json()
            counted = sum(day["by_workflow"].get("document-analysis", 0) for day in usage["days"])
            async with svc.services.sessions() as session:
                delivered = await session.scalar(
                    select(func.count())
                    .select_from(QStashEvent)
                    .where(
                        QStashEvent.state == EventState.DELIVERED, QStashEvent.url.like("%/workflows/document-analysis")
                    )
                )
            assert counted == delivered and counted > 0
            assert usage["daily_quota"] == 500 and usage["total_inline_steps"] > 0
            assert 0 < usage["saved_share"] < 1
