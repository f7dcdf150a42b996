"""Requirement matching: which of a procedure's requirements a case's documents satisfy.

Public interface: `match_requirements`, the `Embedder` protocol with `LocalEmbedder` (offline
MiniLM) and `ApiEmbedder` (hosted OpenAI-compatible API), `build_embedder(settings, http)`, and
the `Fact` / `RequirementMatch` schemas.
"""

from app.matching.api import ApiEmbedder
from app.matching.embeddings import Embedder, build_embedder
from app.matching.errors import EmbeddingApiError, EmbeddingError, EmbeddingUnavailableError
from app.matching.local import LocalEmbedder
from app.matching.matcher import match_requirements, warm_up
from app.matching.schemas import (
    Evidence,
    Fact,
    FactKind,
    MatchMethod,
    MatchStatus,
    RequirementMatch,
    RequirementRef,
)

__all__ = [
    "ApiEmbedder",
    "Embedder",
    "EmbeddingApiError",
    "EmbeddingError",
    "EmbeddingUnavailableError",
    "Evidence",
    "Fact",
    "FactKind",
    "LocalEmbedder",
    "MatchMethod",
    "MatchStatus",
    "RequirementMatch",
    "RequirementRef",
    "build_embedder",
    "match_requirements",
    "warm_up",
]
