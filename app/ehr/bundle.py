"""The case's summary health record: one FHIR R4B `Bundle` (type `collection`) across its documents.

Deduplication (invariant): one Condition per ICD-10-CM code, one MedicationStatement per medication
name, one AllergyIntolerance per substance, one ServiceRequest per procedure, and one Observation per
lab name holding the LATEST value (documents ordered by `analysed_at`; a tie keeps the later
document in the list). For the other kinds the first document's resource is kept.

Provenance: every entry carries one `SOURCE_DOCUMENT` extension per document that supports it
(oldest first), and the `EXTRACTION_PROVENANCE` extensions (document, page, span, text, rule) of
those documents' resources, in the same order; an Observation carries only those of the document
holding its value, and its `issued` is when that document was analysed.

Entry ids are UUIDv5 of the case and the dedup key, so rebuilding gives the same Bundle for the same
documents. A resource that fails validation is not put in the Bundle; it is reported in an
`OperationOutcome` entry instead, so nothing disappears silently.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.bundle import Bundle

from app.ehr.fhir import (
    EXTRACTION_PROVENANCE,
    ID_NAMESPACE,
    SOURCE_DOCUMENT,
    source_extension,
    validate_resource,
)

DocumentResources = tuple[str, datetime | str, list[dict[str, Any]]]
_ORDER = ["Condition", "MedicationStatement", "AllergyIntolerance", "Observation", "ServiceRequest"]


@dataclass
class _Merged:
    resource: dict[str, Any]
    analysed_at: datetime
    documents: list[str] = field(default_factory=list)
    provenance: list[dict[str, Any]] = field(default_factory=list)


def build_bundle(case_id: str, patient_ref: str, documents: list[DocumentResources]) -> dict[str, Any]:
    """The deduplicated, validated Bundle of a case's FHIR resources."""
    ordered = sorted(((doc_id, _instant(at), res) for doc_id, at, res in documents), key=lambda d: d[1])
    merged, problems = _merge(ordered)
    entries, problems = _entries(case_id, patient_ref, merged, problems)
    if problems:
        entries.append(_entry(_outcome(case_id, problems)))
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid5(ID_NAMESPACE, f"case/{case_id}")),
        "type": "collection",
        "entry": entries,
    }
    if ordered:
        bundle["timestamp"] = _iso(ordered[-1][1])
    Bundle.model_validate(bundle)
    return bundle


def dedup_key(resource: dict[str, Any]) -> tuple[str, str] | None:
    """What makes two resources the same fact (type + code/name); None if unrecognised."""
    kind = resource.get("resourceType", "")
    code = resource.get("code") or resource.get("medicationCodeableConcept") or {}
    if kind == "Condition":
        coding = (code.get("coding") or [{}])[0]
        value = coding.get("code") or code.get("text")
    else:
        value = code.get("text") or ((code.get("coding") or [{}])[0]).get("code")
    return (kind, " ".join(str(value).lower().split())) if kind in _ORDER and value else None


def _merge(
    documents: list[tuple[str, datetime, list[dict[str, Any]]]],
) -> tuple[dict[tuple[str, str], _Merged], list[str]]:
    merged: dict[tuple[str, str], _Merged] = {}
    problems: list[str] = []
    for document_id, analysed_at, resources in documents:
        for resource in resources:
            key = dedup_key(resource)
            if key is None:
                problems.append(f"document {document_id}: unrecognised resource {resource.get('resourceType')!r}")
                continue
            known = merged.get(key)
            if known is None:
                merged[key] = known = _Merged(resource, analysed_at)
            elif key[0] == "Observation" and analysed_at >= known.analysed_at:
                known.resource, known.analysed_at = resource, analysed_at
                known.provenance = []
            if document_id not in known.documents:
                known.documents.append(document_id)
            if key[0] != "Observation" or known.resource is resource:
                known.provenance += [e for e in resource.get("extension", []) if e.get("url") == EXTRACTION_PROVENANCE]
    return merged, problems


def _entries(
    case_id: str, patient_ref: str, merged: dict[tuple[str, str], _Merged], problems: list[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    entries = []
    for key, item in sorted(merged.items(), key=lambda kv: _ORDER.index(kv[0][0])):
        resource = _finalised(case_id, patient_ref, key, item)
        errors = validate_resource(resource)
        if errors:
            problems.append(f"{key[0]} {key[1]!r} (documents {', '.join(item.documents)}): {'; '.join(errors)}")
        else:
            entries.append(_entry(resource))
    return entries, problems


def _finalised(case_id: str, patient_ref: str, key: tuple[str, str], item: _Merged) -> dict[str, Any]:
    resource = dict(item.resource)
    resource["id"] = str(uuid.uuid5(ID_NAMESPACE, f"case/{case_id}/{key[0]}/{key[1]}"))
    ours = (SOURCE_DOCUMENT, EXTRACTION_PROVENANCE)
    others = [e for e in resource.get("extension", []) if e.get("url") not in ours]
    resource["extension"] = others + [source_extension(d) for d in item.documents] + item.provenance
    resource["patient" if key[0] == "AllergyIntolerance" else "subject"] = {"reference": patient_ref}
    if key[0] == "Observation":
        resource["issued"] = _iso(item.analysed_at)
    return resource


def _entry(resource: dict[str, Any]) -> dict[str, Any]:
    return {"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource}


def _outcome(case_id: str, problems: list[str]) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "id": str(uuid.uuid5(ID_NAMESPACE, f"case/{case_id}/outcome")),
        "issue": [{"severity": "error", "code": "invalid", "diagnostics": p} for p in problems],
    }


def _instant(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
