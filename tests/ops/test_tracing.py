"""Langfuse tracing against a local stand-in for its ingestion endpoint: one trace per run (ID
derived from the run ID), a span per step attempt; nothing sent or logged without keys."""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.ops.tracing import trace_id
from app.runtime.context import WorkflowContext
from app.runtime.registry import workflow
from app.serving import serve_in_loop
from tests.support.service import live_service

attempts: dict[str, int] = {}


def check(run_id: str) -> str:
    attempts[run_id] = attempts.get(run_id, 0) + 1
    if attempts[run_id] == 1:
        raise RuntimeError("first attempt fails")
    return "ok"


def read(run_id: str) -> str:
    return "read"


@workflow("traced")
async def traced(ctx: WorkflowContext, payload: dict[str, Any]) -> str:
    await ctx.run("read", read, ctx.run_id)
    return await ctx.run("check", check, ctx.run_id)


def _stand_in(batches: list[dict], auths: list[str]) -> Starlette:
    async def ingest(request: Request) -> JSONResponse:
        auths.append(request.headers.get("authorization", ""))
        batches.append(await request.json())
        return JSONResponse({"successes": [], "errors": []}, status_code=207)

    return Starlette(routes=[Route("/api/public/ingestion", ingest, methods=["POST"])])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_run_is_one_trace_with_a_span_per_step_attempt_and_nothing_without_keys(database_url, caplog):
    batches: list[dict] = []
    auths: list[str] = []
    async with serve_in_loop(lambda _: _stand_in(batches, auths)) as (langfuse_url, _):
        keys = {"langfuse_host": langfuse_url, "langfuse_public_key": "pk-lf-test", "langfuse_secret_key": "sk-lf-test"}
        async with live_service(database_url, [traced], embedding_warm_up=False, **keys) as svc:
            run_id = await svc.runtime.trigger("traced", {})
            assert (await svc.wait(run_id)).status == "completed"
            for _ in range(200):
                events = [e for batch in batches for e in batch["batch"]]
                if sum(e["type"] == "span-create" for e in events) == 3:
                    break
                await asyncio.sleep(0.05)
        traces = [e["body"] for e in events if e["type"] == "trace-create"]
        spans = [e["body"] for e in events if e["type"] == "span-create"]
        assert [t["id"] for t in traces] == [trace_id(run_id)] and traces[0]["metadata"]["run_id"] == run_id
        assert {s["traceId"] for s in spans} == {trace_id(run_id)}
        assert [(s["name"], s["metadata"]["attempt"], s["level"]) for s in spans] == [
            ("read", 1, "DEFAULT"),
            ("check", 1, "ERROR"),
            ("check", 2, "DEFAULT"),
        ]
        assert set(auths) == {"Basic " + base64.b64encode(b"pk-lf-test:sk-lf-test").decode()}

        batches.clear()
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            async with live_service(database_url, [traced], embedding_warm_up=False, langfuse_host=langfuse_url) as svc:
                assert svc.services.ops.tracer is None
                run_id = await svc.runtime.trigger("traced", {})
                assert (await svc.wait(run_id)).status == "completed"
        assert batches == []
        assert not [r for r in caplog.records if "langfuse" in (r.name + r.getMessage()).lower()]


async def test_an_llm_call_in_a_step_is_a_generation_under_the_attempts_span_with_model_tokens_and_cost():
    import httpx

    from app.extraction.llm import LLMExtractor
    from app.logging import attempt_var, step_var, workflow_id_var
    from app.ops.tracing import LangfuseTracer, span_id
    from tests.documents.test_pipeline_failures import _cardiology_answer
    from tests.support.outside import FakeLLM

    batches: list[dict] = []
    llm = FakeLLM(_cardiology_answer())
    async with (
        serve_in_loop(lambda _: _stand_in(batches, [])) as (langfuse_url, _),
        serve_in_loop(lambda _: llm.app()) as (llm_url, _),
        httpx.AsyncClient() as http,
    ):
        tracer = LangfuseTracer(http, host=langfuse_url, public_key="pk", secret_key="sk", prices=(3.0, 15.0))
        extractor = LLMExtractor(
            base_url=f"{llm_url}/v1", api_key="sk-test", model="fake-model", http=http, on_call=tracer.generation
        )
        tokens = workflow_id_var.set("wfr_llm"), step_var.set("clinical-extract"), attempt_var.set(2)
        try:
            await extractor.extract(["Discharge summary: hypertension."])
        finally:
            workflow_id_var.reset(tokens[0])
            step_var.reset(tokens[1])
            attempt_var.reset(tokens[2])
        await tracer.flush()
    [generation] = [e["body"] for b in batches for e in b["batch"] if e["type"] == "generation-create"]
    assert generation["traceId"] == trace_id("wfr_llm") and generation["model"] == "fake-model"
    assert generation["parentObservationId"] == span_id("wfr_llm", "clinical-extract", 2)
    assert generation["usage"] == {
        "input": 1200,
        "output": 300,
        "total": 1500,
        "unit": "TOKENS",
        "totalCost": round((1200 * 3.0 + 300 * 15.0) / 1_000_000, 8),
    }
    assert generation["metadata"]["status"] == 200 and generation["endTime"] >= generation["startTime"]
