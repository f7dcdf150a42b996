"""The `Embedder` protocol and the factory that picks a backend from the settings.

Backends (`EMBEDDING_BACKEND`):
- `local` (default): `LocalEmbedder`, all-MiniLM-L6-v2 as int8 ONNX from an installed package,
  offline (docs/adr/0002-embedding-model.md).
- `api`: `ApiEmbedder`, an OpenAI-compatible `/embeddings` API at `EMBEDDING_API_URL` with
  `EMBEDDING_API_KEY` and `EMBEDDING_MODEL`.

Contract of every embedder: `embed(texts)` returns one unit-length vector per text, in order, all
of one dimension, and never blocks the event loop. Build one per app (the local model loads once,
lazily) and hand it down; never at import time.
"""

from __future__ import annotations

import functools
from typing import Protocol, runtime_checkable

import httpx

from app.config import Settings
from app.matching.api import ApiEmbedder
from app.matching.local import LocalEmbedder


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into normalised vectors (cosine similarity = dot product)."""

    async def embed(self, texts: list[str]) -> list[list[float]]: ...


def build_embedder(settings: Settings, http: httpx.AsyncClient) -> Embedder:
    """The embedder the settings ask for; `http` is used by the API backend only."""
    if settings.embedding_backend == "api":
        return ApiEmbedder(
            settings.embedding_api_url, settings.embedding_api_key.get_secret_value(), settings.embedding_model, http
        )
    return shared_local_embedder()


@functools.cache
def shared_local_embedder() -> LocalEmbedder:
    """One local model per process: loading it and embedding the catalog's terms happen once."""
    return LocalEmbedder()
