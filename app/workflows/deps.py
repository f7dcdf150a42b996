"""What pipeline steps reach as `ctx.deps`: built once per app in `app.main.build_services`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.storage import ObjectStorage


@dataclass(frozen=True, slots=True)
class PipelineDeps:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient
    storage: ObjectStorage
    extractor: Any  # app.extraction.agent.ClinicalContextAgent
    embedder: Any  # app.matching.embeddings.Embedder


def build_extractor(settings: Settings, http: httpx.AsyncClient) -> Any:
    """The Clinical Context Agent the settings ask for (EXTRACTOR=offline|llm)."""
    if settings.extractor == "llm":
        from app.extraction.llm import LLMExtractor

        return LLMExtractor(
            base_url=settings.llm_base_url,
            api_key=settings.llm_api_key,
            model=settings.llm_model,
            http=http,
            timeout_s=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
        )
    from app.extraction.offline import OfflineExtractor

    return OfflineExtractor()


def build_pipeline_deps(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], http: httpx.AsyncClient, storage: ObjectStorage
) -> PipelineDeps:
    """Built once per app; nothing here loads a model or connects until first used."""
    from app.matching.embeddings import build_embedder

    return PipelineDeps(
        settings=settings,
        sessions=sessions,
        http=http,
        storage=storage,
        extractor=build_extractor(settings, http),
        embedder=build_embedder(settings, http),
    )
