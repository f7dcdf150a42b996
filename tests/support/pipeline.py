"""Helpers for document-pipeline tests: expected extractions and waiting for a document."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.support.api import FIXTURES, Api

TERMINAL = {"analyzed", "needs_ocr", "failed"}


def expected() -> dict[str, Any]:
    data = json.loads((FIXTURES / "expected.json").read_text())
    data.pop("_about", None)
    return data


async def wait_document(api: Api, document_id: str, token: str, timeout: float = 60) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        response = await api.client.get(f"/documents/{document_id}", headers=api.auth(token))
        assert response.status_code == 200, response.text
        if response.json()["status"] in TERMINAL:
            return response.json()
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"document {document_id} still {response.json()['status']} after {timeout}s")
        await asyncio.sleep(0.1)


def assert_extraction_matches(name: str, extraction: dict[str, Any], want: dict[str, Any]) -> None:
    codes = {c["code"] for c in extraction["conditions"]}
    assert set(want["conditions"]) <= codes, (name, codes)
    if not want["conditions"]:
        assert codes == set(), (name, "invented conditions", codes)
    medications = {m["name"] for m in extraction["medications"]}
    assert set(want["medications"]) <= medications, (name, medications)
    allergies = {a["substance"] for a in extraction["allergies"]}
    assert set(want["allergies"]) <= allergies, (name, allergies)
    labs = {(lab["name"], float(lab["value"]), lab["unit"]) for lab in extraction["labs"]}
    for lab_name, value, unit in want["labs"]:
        assert (lab_name, float(value), unit) in labs, (name, lab_name, labs)
    studies = {s["name"] if isinstance(s, dict) else s for s in extraction["studies"]}
    assert set(want["studies"]) <= studies, (name, studies)
    assert extraction["recommended_procedure"] == want["recommended_procedure"], name
