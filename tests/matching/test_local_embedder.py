"""The offline MiniLM embedder: real model from the installed package, no network."""

from __future__ import annotations

import asyncio
import math
import threading
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.matching import ApiEmbedder, EmbeddingUnavailableError, LocalEmbedder, build_embedder
from app.matching.local import MODEL_SHA256, packaged_model_path, verify


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


async def test_vectors_are_unit_length_with_384_dimensions(local_embedder: LocalEmbedder) -> None:
    vectors = await local_embedder.embed(["HbA1c", "Echokardiographie", ""])
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert all(math.isclose(math.sqrt(dot(v, v)), 1.0, abs_tol=1e-6) for v in vectors)
    assert await local_embedder.embed([]) == []


async def test_a_text_gets_the_same_vector_whatever_else_is_in_the_call(local_embedder: LocalEmbedder) -> None:
    alone = (await local_embedder.embed(["coronary angiography"]))[0]
    texts = ["a much longer sentence about something else entirely", "coronary angiography"]
    among = (await local_embedder.embed(texts))[1]
    assert alone == among


async def test_related_medical_terms_are_closer_than_unrelated_ones(local_embedder: LocalEmbedder) -> None:
    ekg, ecg, knee, echo, echocardiogram, hba1c, haemoglobin_a1c, creatinine = await local_embedder.embed(
        ["EKG", "ECG", "knee MRI", "echo", "echocardiogram", "HbA1c", "haemoglobin A1c", "creatinine"]
    )
    assert dot(ekg, ecg) > 0.6 > dot(ekg, knee)
    assert dot(echo, echocardiogram) > 0.5 > dot(knee, echocardiogram)
    assert dot(hba1c, haemoglobin_a1c) > dot(hba1c, creatinine)


def test_concurrent_first_use_loads_the_model_once() -> None:
    embedder = LocalEmbedder()
    barrier = threading.Barrier(4)
    sessions: list[object] = []

    def load() -> None:
        barrier.wait()
        embedder.load()
        sessions.append(embedder._session)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(sessions) == 4 and len({id(s) for s in sessions}) == 1


async def test_encoding_runs_off_the_event_loop(local_embedder: LocalEmbedder) -> None:
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await local_embedder.embed([f"transthoracic echocardiogram number {i}" for i in range(100)])
    done.set()
    await task
    assert ticks > 1  # the loop kept running other tasks while the model encoded


async def test_a_missing_model_file_fails_with_an_install_hint(tmp_path: Path) -> None:
    embedder = LocalEmbedder(model_path=tmp_path / "missing.onnx")
    with pytest.raises(EmbeddingUnavailableError, match="pip install"):
        await embedder.embed(["ECG"])
    assert not embedder.loaded


async def test_build_embedder_follows_the_settings() -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        assert isinstance(build_embedder(Settings(embedding_backend="local"), http), LocalEmbedder)
        api = Settings(embedding_backend="api", embedding_api_url="http://127.0.0.1:9/v1", embedding_model="m")
        assert isinstance(build_embedder(api, http), ApiEmbedder)
        with pytest.raises(ValueError, match="EMBEDDING_API_URL"):
            build_embedder(Settings(embedding_backend="api"), http)


async def test_a_model_file_with_the_wrong_digest_is_refused(tmp_path: Path) -> None:
    tampered = tmp_path / "model.onnx"
    tampered.write_bytes(b"not the model")
    with pytest.raises(EmbeddingUnavailableError, match="SHA-256"):
        verify(tampered, MODEL_SHA256)
    assert verify(packaged_model_path(), MODEL_SHA256) == packaged_model_path()
