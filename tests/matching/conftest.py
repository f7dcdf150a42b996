"""One real local embedder (the packaged MiniLM) for the whole session: it loads once."""

from __future__ import annotations

import pytest

from app.matching import LocalEmbedder


@pytest.fixture(scope="session")
def local_embedder() -> LocalEmbedder:
    embedder = LocalEmbedder()
    embedder.load()
    return embedder
