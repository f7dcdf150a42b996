"""`ApiEmbedder` against a real OpenAI-compatible embeddings server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import math
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from app.matching import ApiEmbedder, EmbeddingApiError, Fact, MatchStatus, match_requirements
from app.matching.api import endpoint
from app.procedures import get_procedure
from tests.support.live import bind_socket, serve

API_KEY = "sk-test-key"
DIM = 16


def fake_vector(text: str) -> list[float]:
    """Deterministic, deliberately not unit-length, so normalisation is observable."""
    digest = hashlib.sha256(text.encode()).digest()
    return [float(b) + 1.0 for b in digest[:DIM]]


def embeddings_api(requests: list[dict[str, Any]]) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return JSONResponse({"error": {"message": "invalid api key"}}, status_code=401)
        body = await request.json()
        requests.append(body)
        data = [{"object": "embedding", "index": i, "embedding": fake_vector(t)} for i, t in enumerate(body["input"])]
        return JSONResponse({"object": "list", "model": body["model"], "data": list(reversed(data))})

    @app.post("/broken/embeddings")
    async def broken() -> PlainTextResponse:
        return PlainTextResponse("upstream exploded", status_code=503)

    @app.post("/garbage/embeddings")
    async def garbage() -> JSONResponse:
        return JSONResponse({"data": [{"index": 0}]})

    return app


@pytest.fixture
async def api() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    requests: list[dict[str, Any]] = []
    async with serve(lambda _url: embeddings_api(requests)) as (base_url, _app):
        yield base_url, requests


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as client:  # no proxies for 127.0.0.1
        yield client


async def test_posts_an_openai_request_and_returns_unit_vectors_in_input_order(api, http) -> None:  # noqa: ANN001
    base_url, requests = api
    embedder = ApiEmbedder(f"{base_url}/v1", API_KEY, "text-embedding-3-small", http)
    vectors = await embedder.embed(["ECG", "HbA1c", "echo"])
    expected = {"model": "text-embedding-3-small", "input": ["ECG", "HbA1c", "echo"], "encoding_format": "float"}
    assert requests == [expected]
    for text, vector in zip(["ECG", "HbA1c", "echo"], vectors, strict=True):
        raw = fake_vector(text)
        norm = math.sqrt(sum(x * x for x in raw))
        assert vector == pytest.approx([x / norm for x in raw])


async def test_large_inputs_go_in_batches(api, http) -> None:  # noqa: ANN001
    base_url, requests = api
    embedder = ApiEmbedder(f"{base_url}/v1/embeddings", API_KEY, "m", http, batch_size=4)
    vectors = await embedder.embed([f"text {i}" for i in range(10)])
    assert len(vectors) == 10 and [len(r["input"]) for r in requests] == [4, 4, 2]
    assert await embedder.embed([]) == [] and len(requests) == 3


async def test_an_error_status_raises_with_the_status_and_body(api, http) -> None:  # noqa: ANN001
    base_url, _ = api
    with pytest.raises(EmbeddingApiError, match="503: upstream exploded") as caught:
        await ApiEmbedder(f"{base_url}/broken", API_KEY, "m", http).embed(["ECG"])
    assert caught.value.status == 503
    with pytest.raises(EmbeddingApiError, match="401") as caught:
        await ApiEmbedder(f"{base_url}/v1", "wrong-key", "m", http).embed(["ECG"])
    assert caught.value.status == 401


async def test_a_malformed_body_raises(api, http) -> None:  # noqa: ANN001
    base_url, _ = api
    with pytest.raises(EmbeddingApiError, match="malformed"):
        await ApiEmbedder(f"{base_url}/garbage", API_KEY, "m", http).embed(["ECG"])


async def test_an_unreachable_api_raises(http) -> None:  # noqa: ANN001
    sock = bind_socket()  # bound but never listening: connections are refused
    try:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
        with pytest.raises(EmbeddingApiError, match="unreachable"):
            await ApiEmbedder(url, API_KEY, "m", http, timeout_s=2).embed(["ECG"])
    finally:
        sock.close()


async def test_matching_runs_on_the_api_embedder(api, http) -> None:  # noqa: ANN001
    base_url, requests = api
    embedder = ApiEmbedder(f"{base_url}/v1", API_KEY, "m", http)
    facts = [Fact(document_id="d", kind="study", name="EKG"), Fact(document_id="d", kind="study", name="Herzecho")]
    results = await match_requirements(get_procedure("cabg"), facts, embedder, 0.99)
    statuses = {r.requirement.code: r.status for r in results}
    assert statuses["ecg"] is MatchStatus.SATISFIED
    assert requests and requests[-1]["input"] == ["Herzecho"]  # only the unmatched fact went out


def test_the_endpoint_accepts_a_base_or_a_full_url() -> None:
    assert endpoint("https://api.example.test/v1/") == "https://api.example.test/v1/embeddings"
    assert endpoint("https://api.example.test/v1/embeddings") == "https://api.example.test/v1/embeddings"
