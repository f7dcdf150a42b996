"""LLMExtractor against a real OpenAI-compatible chat-completions server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.extraction.agent import ExtractionError
from app.extraction.llm import LLMExtractor
from app.extraction.schemas import extraction_json_schema
from tests.support.live import serve

API_KEY = "test-key-123"
ANSWER = {
    "conditions": [{"code": "I2510", "display": "Coronary artery disease"}],
    "medications": [{"name": "Lipitor", "dose": "80mg", "frequency": "nocte"}],
    "allergies": [{"substance": "Penicillins", "reaction": "Rash"}],
    "labs": [{"name": "HbA1c", "value": 57, "unit": "mmol/mol"}, {"name": "INR", "value": 1.0, "unit": ""}],
    "studies": [{"name": "Transthoracic echo"}, {"name": "MRI of the right knee"}],
    "recommended_procedure": "CABG",
}
Reply = Callable[[], Response]


def completion(content: str, finish_reason: str = "stop") -> Reply:
    message = {"role": "assistant", "content": content}
    body = {"id": "cmpl-1", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}]}
    return lambda: JSONResponse(body)


def status(code: int) -> Reply:
    return lambda: JSONResponse({"error": {"message": f"status {code}"}}, status_code=code)


GOOD = completion(json.dumps(ANSWER))


@dataclass
class ChatServer:
    """Answers each request with the next scripted reply (the last one repeats); records requests."""

    replies: list[Reply]
    delay_s: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def completions(request: Request) -> Response:
            self.requests.append({"headers": dict(request.headers), "body": await request.json()})
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            return self.replies[min(len(self.requests), len(self.replies)) - 1]()

        return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


async def run(server: ChatServer, *, max_retries: int = 2, timeout_s: float = 5.0, pages: list[str] | None = None) -> Any:
    async with serve(lambda base_url: server.app()) as (base_url, _), httpx.AsyncClient() as http:
        extractor = LLMExtractor(base_url=f"{base_url}/v1", api_key=API_KEY, model="test-model",
                                 http=http, timeout_s=timeout_s, max_retries=max_retries)
        return await extractor.extract(pages or ["Discharge summary page one", "page two"])


async def test_good_answer_is_parsed_and_canonicalised() -> None:
    server = ChatServer([GOOD])
    extraction = await run(server)
    assert [(c.code, c.display) for c in extraction.conditions] == [
        ("I25.10", "Atherosclerotic heart disease of native coronary artery without angina pectoris")]
    assert [(m.name, m.dose, m.frequency) for m in extraction.medications] == [("atorvastatin", "80 mg", "at night")]
    assert [(a.substance, a.reaction) for a in extraction.allergies] == [("penicillin", "rash")]
    assert [(lab.name, lab.value, lab.unit) for lab in extraction.labs] == [("hba1c", 7.4, "%"), ("inr", 1.0, "")]
    assert [s.name for s in extraction.studies] == ["echocardiogram", "mri knee"]
    assert extraction.recommended_procedure == "coronary artery bypass grafting"
    assert len(server.requests) == 1


async def test_request_carries_the_schema_the_key_and_the_pages() -> None:
    server = ChatServer([GOOD])
    await run(server)
    request = server.requests[0]
    assert request["headers"]["authorization"] == f"Bearer {API_KEY}"
    body = request["body"]
    assert body["model"] == "test-model"
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "clinical_extraction", "schema": extraction_json_schema(), "strict": True},
    }
    assert body["messages"][0]["role"] == "system"
    assert "Discharge summary page one" in body["messages"][1]["content"]
    assert "page two" in body["messages"][1]["content"]


def test_schema_is_strict() -> None:
    schema = extraction_json_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == set(schema["properties"])
    medication = schema["properties"]["medications"]["items"]
    assert medication["required"] == ["name", "dose", "frequency"] and medication["additionalProperties"] is False


async def test_malformed_json_then_good_answer_is_retried() -> None:
    server = ChatServer([completion('{"conditions": [ oops'), GOOD])
    extraction = await run(server)
    assert extraction.recommended_procedure == "coronary artery bypass grafting"
    assert len(server.requests) == 2


async def test_schema_invalid_answer_is_retried() -> None:
    bad = dict(ANSWER, labs=[{"name": "hba1c", "value": "high", "unit": "%"}])
    missing = {k: v for k, v in ANSWER.items() if k != "allergies"}
    server = ChatServer([completion(json.dumps(bad)), completion(json.dumps(missing)), GOOD])
    extraction = await run(server, max_retries=2)
    assert extraction.labs[0].name == "hba1c"
    assert len(server.requests) == 3


async def test_truncated_every_time_fails_with_a_clear_non_retryable_error() -> None:
    server = ChatServer([completion('{"conditions": [', finish_reason="length")])
    with pytest.raises(ExtractionError) as caught:
        await run(server, max_retries=2)
    assert caught.value.retryable is False
    assert caught.value.attempts == 3 and len(server.requests) == 3
    assert "truncated" in str(caught.value) and "test-model" in str(caught.value)


async def test_server_error_is_retryable_for_the_workflow_and_not_retried_here() -> None:
    server = ChatServer([status(500)])
    with pytest.raises(ExtractionError) as caught:
        await run(server)
    assert caught.value.retryable is True
    assert "500" in str(caught.value)
    assert len(server.requests) == 1


async def test_rate_limit_is_retryable() -> None:
    with pytest.raises(ExtractionError) as caught:
        await run(ChatServer([status(429)]))
    assert caught.value.retryable is True


async def test_bad_api_key_is_not_retryable() -> None:
    server = ChatServer([status(401)])
    with pytest.raises(ExtractionError) as caught:
        await run(server)
    assert caught.value.retryable is False
    assert "401" in str(caught.value) and "API key" in str(caught.value)
    assert len(server.requests) == 1


async def test_timeout_is_retryable() -> None:
    with pytest.raises(ExtractionError) as caught:
        await run(ChatServer([GOOD], delay_s=1.0), timeout_s=0.2)
    assert caught.value.retryable is True
    assert "did not answer" in str(caught.value)


async def test_unreachable_endpoint_is_retryable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with httpx.AsyncClient() as http:
        extractor = LLMExtractor(base_url=f"http://127.0.0.1:{port}/v1", api_key=API_KEY, model="m", http=http)
        with pytest.raises(ExtractionError) as caught:
            await extractor.extract(["text"])
    assert caught.value.retryable is True


async def test_missing_base_url_is_a_clear_configuration_error() -> None:
    async with httpx.AsyncClient() as http:
        extractor = LLMExtractor(base_url="", api_key=API_KEY, model="m", http=http)
        with pytest.raises(ExtractionError) as caught:
            await extractor.extract(["text"])
    assert caught.value.retryable is False and "LLM_BASE_URL" in str(caught.value)


async def test_llm_facts_carry_provenance_found_in_the_pages() -> None:
    pages = ["DISCHARGE SUMMARY\nDiagnosis: coronary artery disease (I25.10).\nLipitor 80 mg nocte.",
             "Allergies: penicillin (rash).\nHbA1c 57 mmol/mol, INR 1.0.\nEcho normal. MRI right knee.\nPlan: CABG."]
    extraction = await run(ChatServer([GOOD]), pages=pages)

    def where(item: Any) -> tuple[int, str, str]:
        return item.provenance.page, item.provenance.text, item.provenance.rule

    assert where(extraction.conditions[0]) == (1, "I25.10", "llm:test-model")
    assert where(extraction.medications[0]) == (1, "Lipitor", "llm:test-model")
    assert where(extraction.allergies[0]) == (2, "penicillin", "llm:test-model")
    assert [where(lab)[:2] for lab in extraction.labs] == [(2, "HbA1c"), (2, "INR")]
    assert [where(study)[:2] for study in extraction.studies] == [(2, "Echo"), (2, "MRI")]
    assert (extraction.procedure_provenance.page, extraction.procedure_provenance.text) == (2, "CABG")
    for item in [*extraction.conditions, *extraction.medications, *extraction.labs]:
        page = pages[item.provenance.page - 1]
        assert page[item.provenance.start:item.provenance.end] == item.provenance.text


async def test_llm_facts_the_pages_do_not_mention_have_no_provenance() -> None:
    extraction = await run(ChatServer([GOOD]))
    assert all(c.provenance is None for c in extraction.conditions)
    assert extraction.procedure_provenance is None
