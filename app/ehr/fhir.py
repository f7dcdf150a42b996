"""Map a document's `Extraction` to FHIR R4B resources and validate each one.

    condition            -> Condition            (ICD-10-CM coding, clinical + verification status)
    medication           -> MedicationStatement  (medicationCodeableConcept text, dosage text)
    allergy              -> AllergyIntolerance   (code text, reaction manifestation)
    lab                  -> Observation          (category laboratory, LOINC when known, UCUM quantity)
    recommended_procedure-> ServiceRequest       (intent proposal)

Invariants:
- every resource is validated twice: structurally by `fhir.resources` R4B, and for the values that
  matter by us (fhir.resources does not check value sets): status codes within their value sets,
  ICD-10-CM code shape, a finite lab value with a UCUM unit from `UCUM_UNITS`;
- a resource that fails becomes an issue `{severity, resource_type, message, source}` (`source`
  points into the document's extraction, e.g. `documents/doc_1/extraction/labs/2`) and is not
  returned as valid - nothing is dropped silently;
- resource ids are deterministic (UUIDv5 of document, type and item key), so re-running the step
  produces the same resources; each resource names its document in the `SOURCE_DOCUMENT` extension.

Provenance: a fact that carries provenance (page, span, rule: `app.extraction.schemas.Provenance`)
gives its resource one complex `EXTRACTION_PROVENANCE` extension, so a reviewer sees in the FHIR
record itself where and why a code was chosen:

    {"url": EXTRACTION_PROVENANCE, "extension": [
        {"url": "document", "valueString": "doc_1"},   # the document id (GET /documents/{id})
        {"url": "page", "valuePositiveInt": 2},       # 1-based page
        {"url": "start", "valueInteger": 120},        # span in that page's text, end exclusive
        {"url": "end", "valueInteger": 141},
        {"url": "text", "valueString": "Angina pectoris"},  # page[start:end]
        {"url": "rule", "valueString": "vocabulary-term"}]} # the rule or model that produced it

A fact without provenance (stored before it existed, or an LLM assertion the text does not
support) has no such extension: the absence is itself what a reviewer needs to see.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from app.extraction.schemas import Allergy, Condition, Extraction, Lab, Medication, Provenance
from app.extraction.vocabulary import default_vocabulary

ICD10_CM_SYSTEM = "http://hl7.org/fhir/sid/icd-10-cm"
UCUM_SYSTEM = "http://unitsofmeasure.org"
LOINC_SYSTEM = "http://loinc.org"
SOURCE_DOCUMENT = "https://curaway.health/fhir/StructureDefinition/source-document"
EXTRACTION_PROVENANCE = "https://curaway.health/fhir/StructureDefinition/extraction-provenance"
TERMINOLOGY = "http://terminology.hl7.org/CodeSystem"
ID_NAMESPACE = uuid.UUID("6f1c9a52-3f0e-4b7d-9a51-2c4e8d0b7a10")

# UCUM codes we emit for lab quantities (case-sensitive, as UCUM is); display text where it differs.
UCUM_UNITS = {
    "g/dL",
    "g/L",
    "%",
    "mg/dL",
    "mg/L",
    "10*9/L",
    "10*12/L",
    "mmol/L",
    "umol/L",
    "mmol/mol",
    "nmol/L",
    "pmol/L",
    "mEq/L",
    "U/L",
    "m[IU]/L",
    "ng/mL",
    "ng/dL",
    "ng/L",
    "pg/mL",
    "fL",
    "pg",
    "s",
    "mm/h",
    "mL/min",
    "mL/min/{1.73_m2}",
    "{INR}",
    "1",
    "U/mL",
    "m[IU]/mL",
}
UNIT_DISPLAY = {
    "10*9/L": "10^9/L",
    "10*12/L": "10^12/L",
    "m[IU]/L": "mIU/L",
    "m[IU]/mL": "mIU/mL",
    "umol/L": "µmol/L",
    "mL/min/{1.73_m2}": "mL/min/1.73m2",
    "{INR}": "INR",
    "1": "",
}
_CLINICAL = ("clinicalStatus", "coding", 0, "code")
_VERIFICATION = ("verificationStatus", "coding", 0, "code")
# Required value sets (FHIR R4B) of the status-like codes we emit: fhir.resources does not check them.
STATUS_VALUE_SETS: dict[str, dict[tuple[str | int, ...], frozenset[str]]] = {
    "Condition": {
        _CLINICAL: frozenset({"active", "recurrence", "relapse", "inactive", "remission", "resolved"}),
        _VERIFICATION: frozenset(
            {"unconfirmed", "provisional", "differential", "confirmed", "refuted", "entered-in-error"}
        ),
    },
    "MedicationStatement": {
        ("status",): frozenset(
            {"active", "completed", "entered-in-error", "intended", "stopped", "on-hold", "unknown", "not-taken"}
        ),
    },
    "AllergyIntolerance": {
        _CLINICAL: frozenset({"active", "inactive", "resolved"}),
        _VERIFICATION: frozenset({"unconfirmed", "confirmed", "refuted", "entered-in-error"}),
    },
    "Observation": {
        ("status",): frozenset(
            {"registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error", "unknown"}
        ),
    },
    "ServiceRequest": {
        ("status",): frozenset({"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"}),
        ("intent",): frozenset(
            {
                "proposal",
                "plan",
                "directive",
                "order",
                "original-order",
                "reflex-order",
                "filler-order",
                "instance-order",
                "option",
            }
        ),
    },
}
_ICD10_CM = re.compile(r"[A-TV-Z][0-9][0-9AB](?:\.[0-9A-TV-Z]{1,4})?")


def to_fhir(
    extraction: Extraction, *, patient_ref: str, document_id: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(valid resources as JSON dicts, issues for the items that did not make a valid resource)."""
    resources: list[dict[str, Any]] = []
    issues: list[dict[str, Any]] = []
    for pointer, resource in _resources(extraction, patient_ref, document_id):
        errors = validate_resource(resource)
        if errors:
            source = f"documents/{document_id}/extraction/{pointer}"
            issues.append(issue(resource["resourceType"], "; ".join(errors), source))
        else:
            resources.append(resource)
    return resources, issues


def issue(resource_type: str, message: str, source: str, severity: str = "error") -> dict[str, Any]:
    """One recorded problem with a resource."""
    return {"severity": severity, "resource_type": resource_type, "message": message, "source": source}


def validate_resource(resource: dict[str, Any]) -> list[str]:
    """Problems with a resource: structural (fhir.resources R4B) and value checks; [] when valid."""
    model = _model_class(resource.get("resourceType", ""))
    if model is None:
        return [f"unsupported resource type {resource.get('resourceType')!r}"]
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        return [f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in exc.errors()]
    return _value_errors(resource)


def _resources(extraction: Extraction, patient_ref: str, document_id: str) -> list[tuple[str, dict[str, Any]]]:
    """(JSON pointer of the item in the extraction, resource) for every item."""
    subject = {"reference": patient_ref}
    made: list[tuple[str, dict[str, Any]]] = []
    builders: list[tuple[str, list[Any], Callable[..., dict[str, Any]]]] = [
        ("conditions", extraction.conditions, _condition),
        ("medications", extraction.medications, _medication),
        ("allergies", extraction.allergies, _allergy),
        ("labs", extraction.labs, _observation),
    ]
    for field, items, build in builders:
        for index, item in enumerate(items):
            resource = _with_source(build(item, subject), document_id, f"{field}/{index}", item.provenance)
            made.append((f"{field}/{index}", resource))
    if extraction.recommended_procedure is not None:
        request = _with_source(
            _service_request(extraction.recommended_procedure, subject),
            document_id,
            "recommended_procedure",
            extraction.procedure_provenance,
        )
        made.append(("recommended_procedure", request))
    return made


def _with_source(
    resource: dict[str, Any], document_id: str, pointer: str, provenance: Provenance | None
) -> dict[str, Any]:
    extensions = [source_extension(document_id)]
    if provenance is not None:
        extensions.append(provenance_extension(document_id, provenance))
    head = {
        "resourceType": resource["resourceType"],
        "id": str(uuid.uuid5(ID_NAMESPACE, f"{document_id}/{pointer}")),
        "extension": extensions,
    }
    return head | resource


def provenance_extension(document_id: str, provenance: Provenance) -> dict[str, Any]:
    """The extension saying where in which document a fact was read, and by which rule."""
    parts: list[dict[str, Any]] = [
        {"url": "document", "valueString": document_id},
        {"url": "page", "valuePositiveInt": provenance.page},
        {"url": "start", "valueInteger": provenance.start},
        {"url": "end", "valueInteger": provenance.end},
    ]
    if provenance.text.strip():  # a FHIR string is never empty or blank
        parts.append({"url": "text", "valueString": provenance.text})
    parts.append({"url": "rule", "valueString": provenance.rule})
    return {"url": EXTRACTION_PROVENANCE, "extension": parts}


def provenance_of(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """The resource's provenance extensions as plain dicts {document, page, start, end, text, rule}."""
    found = []
    for extension in resource.get("extension", []):
        if extension.get("url") == EXTRACTION_PROVENANCE:
            found.append(
                {
                    part["url"]: next(v for k, v in part.items() if k.startswith("value"))
                    for part in extension.get("extension", [])
                }
            )
    return found


def source_extension(document_id: str) -> dict[str, str]:
    """The extension naming a document a resource was extracted from."""
    return {"url": SOURCE_DOCUMENT, "valueString": document_id}


def _concept(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    coding = {"system": system, "code": code} | ({"display": display} if display else {})
    return {"coding": [coding]}


def _condition(condition: Condition, subject: dict[str, str]) -> dict[str, Any]:
    code = _concept(ICD10_CM_SYSTEM, condition.code, condition.display) | {"text": condition.display}
    return {
        "resourceType": "Condition",
        "clinicalStatus": _concept(f"{TERMINOLOGY}/condition-clinical", "active"),
        "verificationStatus": _concept(f"{TERMINOLOGY}/condition-ver-status", "confirmed"),
        "category": [_concept(f"{TERMINOLOGY}/condition-category", "problem-list-item")],
        "code": code,
        "subject": subject,
    }


def _medication(medication: Medication, subject: dict[str, str]) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "status": "active",
        "medicationCodeableConcept": {"text": medication.name},
        "subject": subject,
    }
    dosage = " ".join(part for part in (medication.dose, medication.frequency) if part)
    if dosage:
        resource["dosage"] = [{"text": dosage}]
    return resource


def _allergy(allergy: Allergy, subject: dict[str, str]) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "AllergyIntolerance",
        "clinicalStatus": _concept(f"{TERMINOLOGY}/allergyintolerance-clinical", "active"),
        "verificationStatus": _concept(f"{TERMINOLOGY}/allergyintolerance-verification", "confirmed"),
        "code": {"text": allergy.substance},
        "patient": subject,
    }
    if allergy.reaction:
        resource["reaction"] = [{"manifestation": [{"text": allergy.reaction}]}]
    return resource


def _observation(lab: Lab, subject: dict[str, str]) -> dict[str, Any]:
    spec = default_vocabulary().labs.get(lab.name)
    code: dict[str, Any] = {"text": lab.name}
    if spec and spec.loinc:
        code = _concept(LOINC_SYSTEM, spec.loinc) | code
    unit = lab.unit or ("{INR}" if lab.name == "inr" else "1")
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [_concept(f"{TERMINOLOGY}/observation-category", "laboratory", "Laboratory")],
        "code": code,
        "subject": subject,
        "valueQuantity": {
            "value": lab.value,
            "unit": UNIT_DISPLAY.get(unit, unit),
            "system": UCUM_SYSTEM,
            "code": unit,
        },
    }


def _service_request(procedure: str, subject: dict[str, str]) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "proposal",
        "code": {"text": procedure},
        "subject": subject,
    }


def _value_errors(resource: dict[str, Any]) -> list[str]:
    kind = resource["resourceType"]
    errors = []
    for path, allowed in STATUS_VALUE_SETS.get(kind, {}).items():
        value = _at(resource, path)
        if value not in allowed:
            errors.append(f"{'.'.join(str(p) for p in path)} {value!r} is not in its value set")
    if kind == "Condition":
        errors += _condition_errors(resource)
    if kind == "Observation":
        errors += _quantity_errors(resource.get("valueQuantity"))
    return errors


def _condition_errors(resource: dict[str, Any]) -> list[str]:
    coding = (_at(resource, ("code", "coding")) or [{}])[0]
    code = coding.get("code")
    if coding.get("system") != ICD10_CM_SYSTEM or not isinstance(code, str) or not _ICD10_CM.fullmatch(code):
        return [f"code {code!r} is not an ICD-10-CM code"]
    return []


def _quantity_errors(quantity: dict[str, Any] | None) -> list[str]:
    if not quantity:
        return ["valueQuantity is missing"]
    errors = []
    value = quantity.get("value")
    if not isinstance(value, int | float) or not math.isfinite(value):
        errors.append(f"value {value!r} is not a finite number")
    if quantity.get("system") != UCUM_SYSTEM or quantity.get("code") not in UCUM_UNITS:
        errors.append(f"unit {quantity.get('code')!r} is not an accepted UCUM unit")
    return errors


def _at(data: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        try:
            data = data[step]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _model_class(resource_type: str) -> Any:
    try:
        return get_fhir_model_class(resource_type)
    except (KeyError, ValueError):
        return None
