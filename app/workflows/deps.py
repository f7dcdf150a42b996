"""What pipeline steps reach as `ctx.deps`: built once per app by `build_pipeline_deps`.

Nothing here loads a model or connects until first used. Tests may hand the app other deps
(`create_app(deps=...)`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.extraction.agent import ClinicalContextAgent
from app.extraction.llm import LLMCall, LLMExtractor
from app.extraction.offline import OfflineExtractor
from app.matching.embeddings import Embedder, build_embedder
from app.storage import ObjectStorage


@dataclass(frozen=True, slots=True)
class PipelineDeps:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient
    storage: ObjectStorage
    extractor: ClinicalContextAgent
    embedder: Embedder


def build_extractor(
    settings: Settings, http: httpx.AsyncClient, on_llm_call: Callable[[LLMCall], None] | None = None
) -> ClinicalContextAgent:
    """The Clinical Context Agent the settings ask for (EXTRACTOR=offline|llm)."""
    if settings.extractor == "llm":
        return LLMExtractor(
            base_url=settings.llm_base_url,
            api_key=settings.llm_api_key.get_secret_value(),
            model=settings.llm_model,
            http=http,
            timeout_s=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
            on_call=on_llm_call,
        )
    return OfflineExtractor()


def build_pipeline_deps(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    storage: ObjectStorage,
    *,
    on_llm_call: Callable[[LLMCall], None] | None = None,
) -> PipelineDeps:
    """`on_llm_call` observes every request to the LLM (tracing)."""
    return PipelineDeps(
        settings=settings,
        sessions=sessions,
        http=http,
        storage=storage,
        extractor=build_extractor(settings, http, on_llm_call),
        embedder=build_embedder(settings, http),
    )
