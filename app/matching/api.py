"""`ApiEmbedder`: a hosted, OpenAI-compatible `POST {url}/embeddings` API.

Request: `{"model": ..., "input": [texts], "encoding_format": "float"}` with
`Authorization: Bearer <key>`; response: `{"data": [{"index": i, "embedding": [...]}, ...]}`.
Works with OpenAI, Azure-style gateways, Together, Mistral, vLLM, Ollama's OpenAI endpoint, ...

Invariants: vectors come back in input order (sorted by `index`), L2-normalised here whatever
the provider does; inputs go in chunks of `batch_size`; any non-2xx answer, transport failure or
malformed body raises `EmbeddingApiError` with the status and a short excerpt, never a vector of
the wrong length. No retries here: the workflow step that calls it is retried by the runtime.
"""

from __future__ import annotations

import math
from typing import Any

import httpx

from app.matching.errors import EmbeddingApiError


def unit(vector: list[float]) -> list[float]:
    """`vector` scaled to length 1 (a zero vector stays zero)."""
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm > 0 else list(vector)


def endpoint(url: str) -> str:
    """The embeddings endpoint for a base URL (`.../v1`) or a full one (`.../embeddings`)."""
    url = url.rstrip("/")
    return url if url.endswith("/embeddings") else f"{url}/embeddings"


class ApiEmbedder:
    """Embeddings from a hosted API; `http` is the app's shared `httpx.AsyncClient`."""

    def __init__(
        self,
        url: str,
        api_key: str,
        model: str,
        http: httpx.AsyncClient,
        *,
        batch_size: int = 128,
        timeout_s: float = 30.0,
    ) -> None:
        if not url or not model:
            raise ValueError("EMBEDDING_API_URL and EMBEDDING_MODEL must be set when EMBEDDING_BACKEND=api")
        self.model_id = model
        self._url = endpoint(url)
        self._api_key = api_key
        self._model = model
        self._http = http
        self._batch_size = max(1, batch_size)
        self._timeout = timeout_s

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """Unit vectors for `texts`, in order."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            vectors.extend(await self._embed_chunk(texts[start : start + self._batch_size]))
        return vectors

    async def _embed_chunk(self, texts: list[str]) -> list[list[float]]:
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        body = {"model": self._model, "input": texts, "encoding_format": "float"}
        try:
            response = await self._http.post(self._url, json=body, headers=headers, timeout=self._timeout)
        except httpx.HTTPError as exc:
            raise EmbeddingApiError(f"embeddings API at {self._url} unreachable: {exc!r}") from exc
        if response.status_code // 100 != 2:
            raise EmbeddingApiError(
                f"embeddings API at {self._url} answered {response.status_code}: {response.text[:300]}",
                status=response.status_code,
            )
        return self._parse(response, len(texts))

    def _parse(self, response: httpx.Response, expected: int) -> list[list[float]]:
        try:
            items: list[dict[str, Any]] = sorted(response.json()["data"], key=lambda d: d["index"])
            vectors = [[float(x) for x in item["embedding"]] for item in items]
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingApiError(f"embeddings API at {self._url} sent a malformed body: {exc!r}") from exc
        if len(vectors) != expected or len({len(v) for v in vectors}) > 1:
            raise EmbeddingApiError(
                f"embeddings API at {self._url} returned {len(vectors)} vectors for {expected} inputs "
                "(or vectors of different lengths)"
            )
        return [unit(v) for v in vectors]
