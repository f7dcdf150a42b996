"""What the Clinical Context Agent returns: the `extraction` of `GET /documents/{id}`.

Invariants: names are lower-case canonical names from `vocabulary.json` (generic drug names,
canonical lab names, study and procedure names); condition codes are ICD-10-CM; lab values are in
the lab's canonical UCUM unit ("" for unitless ratios such as INR). Both agents (offline and LLM)
produce exactly this shape, so everything downstream (FHIR mapping, requirement matching, the EHR
bundle) is agent-agnostic.

Provenance: each fact may carry `provenance` (and the procedure `procedure_provenance`): the
1-based page, the character span in that page's text (`text` is exactly `page[start:end]`) and the
rule or model that produced it. It is optional in the schema, so extractions stored before it
existed stay valid.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Provenance(BaseModel):
    """Where a fact was read: page (1-based), span in that page's text, and the rule that read it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    page: int = Field(ge=1)
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    text: str = Field(description="the page's text from start to end")
    rule: str = Field(description='e.g. "stated-code", "vocabulary-term", "llm"')


class _Item(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    provenance: Provenance | None = None


class Condition(_Item):
    code: str = Field(description="ICD-10-CM code, e.g. I25.10")
    display: str = Field(description="human-readable name of the condition")


class Medication(_Item):
    name: str = Field(description="generic name, lower case")
    dose: str | None = Field(default=None, description='e.g. "75 mg"')
    frequency: str | None = Field(default=None, description='e.g. "once daily"')


class Allergy(_Item):
    substance: str
    reaction: str | None = None


class Lab(_Item):
    name: str
    value: float
    unit: str = Field(description='UCUM code; "" for unitless results such as INR')


class Study(_Item):
    name: str


class Extraction(BaseModel):
    """The clinical content of one document."""

    model_config = ConfigDict(extra="ignore")

    conditions: list[Condition] = Field(default_factory=list)
    medications: list[Medication] = Field(default_factory=list)
    allergies: list[Allergy] = Field(default_factory=list)
    labs: list[Lab] = Field(default_factory=list)
    studies: list[Study] = Field(default_factory=list)
    recommended_procedure: str | None = None
    procedure_provenance: Provenance | None = None


def _nullable(kind: str) -> dict[str, Any]:
    return {"type": [kind, "null"]}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    """A strict JSON-schema object: every property required, nothing else allowed."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _array_of(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": _object(properties)}


def extraction_json_schema() -> dict[str, Any]:
    """The `Extraction` schema in the strict form structured-output endpoints accept.

    Strict mode requires every property to be listed in `required` and
    `additionalProperties: false`; optional values are expressed as nullable types.
    """
    string = {"type": "string"}
    return _object(
        {
            "conditions": _array_of({"code": string, "display": string}),
            "medications": _array_of(
                {"name": string, "dose": _nullable("string"), "frequency": _nullable("string")}
            ),
            "allergies": _array_of({"substance": string, "reaction": _nullable("string")}),
            "labs": _array_of({"name": string, "value": {"type": "number"}, "unit": string}),
            "studies": _array_of({"name": string}),
            "recommended_procedure": _nullable("string"),
        }
    )
