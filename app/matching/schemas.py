"""What the matcher consumes (facts found in a case's documents) and what it produces.

A `Fact` is one thing a document says: a condition, a medication, a lab result with its value,
a study that was done, a letter, or a snippet of page text. The caller builds facts from each
document's extraction; the matcher never reads documents itself. A `RequirementMatch` says
whether one requirement of the procedure is satisfied and by which facts (evidence).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class FactKind(StrEnum):
    CONDITION = "condition"
    MEDICATION = "medication"
    ALLERGY = "allergy"
    LAB = "lab"
    STUDY = "study"
    PROCEDURE = "procedure"
    LETTER = "letter"
    TEXT = "text"


class MatchStatus(StrEnum):
    SATISFIED = "satisfied"
    MISSING = "missing"


class MatchMethod(StrEnum):
    EXACT = "exact"  # the fact names the requirement or one of its synonyms
    EMBEDDING = "embedding"  # the fact is semantically close enough to the requirement


class Fact(BaseModel):
    """Something found in one document. Labs carry `value` (and `unit`); the rest need not."""

    model_config = ConfigDict(frozen=True)

    document_id: str
    kind: FactKind
    name: str = Field(min_length=1)
    snippet: str = ""
    value: float | str | None = None
    unit: str | None = None

    @property
    def has_value(self) -> bool:
        return self.value is not None and str(self.value).strip() != ""

    def display(self) -> str:
        """The snippet when there is one, else the name with its value and unit."""
        if self.snippet.strip():
            return self.snippet.strip()
        if self.has_value:
            return " ".join(p for p in (self.name, str(self.value), self.unit or "") if p).strip()
        return self.name


class RequirementRef(BaseModel):
    code: str
    name: str


class Evidence(BaseModel):
    """One fact supporting a requirement: where it is, what it says, how strongly it matches."""

    document_id: str
    snippet: str
    score: float = Field(ge=0, le=1)
    fact: str  # the fact's name
    method: MatchMethod


class RequirementMatch(BaseModel):
    """One requirement's outcome: satisfied when at least one piece of evidence supports it."""

    requirement: RequirementRef
    status: MatchStatus
    evidence: list[Evidence] = []
