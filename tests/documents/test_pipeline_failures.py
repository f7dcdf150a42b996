"""The pipeline under failure: a flaky LLM, and the service killed during embedding-match."""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter

import httpx
import pytest
from sqlalchemy import select

from app.extraction.schemas import Extraction
from app.runtime.models import Event, WorkflowStep
from app.serving import serve_in_loop
from tests.support.api import Api
from tests.support.outside import FakeEmbeddings, FakeLLM
from tests.support.pipeline import expected, wait_document
from tests.support.processes import free_port, start_server, stop, wait_healthy
from tests.support.service import live_service

STAGES = [
    "document.uploaded", "document.upload_confirmed", "document.ocr_completed", "document.extraction_completed",
    "document.fhir_validated", "document.requirements_matched", "document.ehr_rebuilt", "document.analyzed",
]


def _cardiology_answer() -> dict:
    want = expected()["discharge_summary_cardiology.pdf"]
    return Extraction.model_validate({
        "conditions": [{"code": c, "display": c} for c in want["conditions"]],
        "medications": [{"name": m} for m in want["medications"]],
        "allergies": [],
        "labs": [{"name": n, "value": v, "unit": u} for n, v, u in want["labs"]],
        "studies": [{"name": s} for s in want["studies"]],
        "recommended_procedure": want["recommended_procedure"],
    }).model_dump(mode="json")


async def _events_by_type(sessions, document_id: str) -> Counter:
    async with sessions() as session:
        return Counter(await session.scalars(select(Event.type).where(Event.document_id == document_id)))


async def _attempts(sessions, run_id: str) -> dict[str, int]:
    async with sessions() as session:
        return {s.name: s.attempts for s in await session.scalars(select(WorkflowStep).where(WorkflowStep.run_id == run_id))}


async def test_llm_failing_twice_then_answering_runs_ocr_once_and_shows_each_stage_once(database_url):
    llm = FakeLLM(_cardiology_answer(), failures=2)
    async with serve_in_loop(lambda _: llm.app()) as (llm_url, _):
        overrides = {"extractor": "llm", "llm_base_url": f"{llm_url}/v1", "llm_api_key": "sk-test", "llm_model": "fake",
                     "llm_max_retries": 0, "workflow_retry_base_delay_s": 0.2}
        async with live_service(database_url, None, **overrides) as svc, httpx.AsyncClient(base_url=svc.base_url) as client:
            api = Api(client)
            _, case, token = await api.new_case("cabg")
            accepted = (await api.upload(case["id"], token, "discharge_summary_cardiology.pdf")).json()
            document = await wait_document(api, accepted["document_id"], token)
            assert document["status"] == "analyzed", document
            assert llm.requests == 3
            attempts = await _attempts(svc.services.sessions, accepted["workflow_run_id"])
            assert attempts["ocr"] == 1 and attempts["clinical-extract"] == 3
            events = await _events_by_type(svc.services.sessions, accepted["document_id"])
            assert {t: events[t] for t in STAGES} == dict.fromkeys(STAGES, 1)


async def test_llm_never_answering_well_ends_the_document_failed_with_a_reason(database_url):
    llm = FakeLLM(_cardiology_answer(), failures=100)
    async with serve_in_loop(lambda _: llm.app()) as (llm_url, _):
        overrides = {"extractor": "llm", "llm_base_url": f"{llm_url}/v1", "llm_api_key": "sk-test", "llm_model": "fake",
                     "llm_max_retries": 0, "workflow_default_retries": 1, "workflow_retry_base_delay_s": 0.1}
        async with live_service(database_url, None, **overrides) as svc, httpx.AsyncClient(base_url=svc.base_url) as client:
            api = Api(client)
            _, case, token = await api.new_case("cabg")
            accepted = (await api.upload(case["id"], token, "discharge_summary_cardiology.pdf")).json()
            document = await wait_document(api, accepted["document_id"], token)
            assert document["status"] == "failed"
            assert "clinical-extract" in document["failure_reason"]
            events = await _events_by_type(svc.services.sessions, accepted["document_id"])
            assert events["document.analysis_failed"] == 1 and events["document.analyzed"] == 0


@pytest.mark.slow
async def test_killing_the_service_during_embedding_match_still_ends_analyzed_without_redoing_ocr(database_url, tmp_path):
    embeddings = FakeEmbeddings(hang_first=True)
    async with serve_in_loop(lambda _: embeddings.app()) as (embeddings_url, _):
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        settings = {"embedding_backend": "api", "embedding_api_url": f"{embeddings_url}/v1", "embedding_model": "fake",
                    "embedding_warm_up": False, "storage_dir": str(tmp_path / "storage"), "workflow_inline_budget_ms": 2000}
        env = {"CURAWAY_TEST_SETTINGS": json.dumps(settings), "CURAWAY_TEST_WORKFLOWS": "pipelines"}
        log = tmp_path / "server.log"
        process = start_server(port, database_url, log, env=env)
        try:
            await wait_healthy(base_url, process, log)
            async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
                api = Api(client)
                _, case, token = await api.new_case("cabg")
                accepted = (await api.upload(case["id"], token, "discharge_summary_cardiology.pdf")).json()
                await asyncio.wait_for(embeddings.hanging.wait(), 60)
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=10)
                process = start_server(port, database_url, log, env=env)
                await wait_healthy(base_url, process, log)
                document = await wait_document(api, accepted["document_id"], token, timeout=120)
                assert document["status"] == "analyzed", (document, log.read_text()[-3000:])
        finally:
            stop(process)
    from app.db import create_engine, session_factory

    engine = create_engine(database_url)
    try:
        sessions = session_factory(engine)
        attempts = await _attempts(sessions, accepted["workflow_run_id"])
        assert attempts["ocr"] == 1 and attempts["clinical-extract"] == 1 and attempts["embedding-match"] == 2
        events = await _events_by_type(sessions, accepted["document_id"])
        assert {t: events[t] for t in STAGES} == dict.fromkeys(STAGES, 1)
    finally:
        await engine.dispose()
