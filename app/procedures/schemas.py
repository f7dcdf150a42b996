"""Procedures and their pre-treatment requirements: the catalog's models and API schemas.

Invariants: a `Procedure` is immutable once loaded (frozen models, tuples), codes are
lower-case slugs, requirement codes are unique within a procedure. `synonyms` are for the
matcher (names, abbreviations, spelling variants, a few non-English terms) and are not part
of the public API; `description` is written for patients and staff.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

CODE_PATTERN = r"^[a-z][a-z0-9_]*$"


class RequirementKind(StrEnum):
    """What sort of document or result fulfils a requirement."""

    STUDY = "study"  # imaging, ECG, endoscopy, pathology report, ...
    LAB = "lab"  # a laboratory result with a value
    LETTER = "letter"  # a referral letter, specialist report or clearance
    OTHER = "other"  # photographs, questionnaires, ...


class Requirement(BaseModel):
    """One thing a provider needs to see before accepting a patient for a procedure."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str = Field(pattern=CODE_PATTERN, max_length=80)
    name: str = Field(min_length=1, max_length=300)
    kind: RequirementKind
    description: str = Field(min_length=1)
    synonyms: tuple[str, ...] = ()
    max_age_days: int | None = Field(default=None, gt=0)

    @property
    def terms(self) -> tuple[str, ...]:
        """The name followed by every synonym: what the matcher compares facts against."""
        return (self.name, *self.synonyms)


class Procedure(BaseModel):
    """A procedure patients seek abroad, with the requirements checked for every case."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str = Field(pattern=CODE_PATTERN, max_length=80)
    name: str = Field(min_length=1)
    specialty: str = Field(min_length=1)
    description: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()
    requirements: tuple[Requirement, ...] = Field(min_length=1)

    def requirement(self, code: str) -> Requirement:
        """The requirement with this code (KeyError when the procedure has none)."""
        for item in self.requirements:
            if item.code == code:
                return item
        raise KeyError(code)


class RequirementRead(BaseModel):
    """A requirement as `GET /procedures` shows it."""

    code: str
    name: str
    kind: RequirementKind
    description: str
    max_age_days: int | None = None


class ProcedureRead(BaseModel):
    """A procedure as `GET /procedures` shows it (contract: `code`, `name`, `requirements`)."""

    code: str
    name: str
    specialty: str
    description: str
    requirements: list[RequirementRead]

    @classmethod
    def of(cls, procedure: Procedure) -> ProcedureRead:
        return cls(
            code=procedure.code,
            name=procedure.name,
            specialty=procedure.specialty,
            description=procedure.description,
            requirements=[
                RequirementRead.model_validate(r.model_dump(exclude={"synonyms"})) for r in procedure.requirements
            ],
        )
