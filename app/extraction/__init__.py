"""The Clinical Context Agent: clinical facts (conditions, medications, allergies, labs, studies,
recommended procedure) from a document's text. `OfflineExtractor` is the deterministic default;
`LLMExtractor` uses any OpenAI-compatible endpoint. Both return canonical `Extraction`s.
"""

from app.extraction.agent import ClinicalContextAgent, ExtractionError
from app.extraction.llm import LLMExtractor
from app.extraction.offline import OfflineExtractor
from app.extraction.schemas import Extraction

__all__ = ["ClinicalContextAgent", "Extraction", "ExtractionError", "LLMExtractor", "OfflineExtractor"]
