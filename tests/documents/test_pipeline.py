"""The document-analysis pipeline end to end, through the HTTP API, on the fixture documents."""

from __future__ import annotations

import httpx
import pytest

from app.documents.ocr import extract_pages
from app.ehr.fhir import provenance_of
from tests.support.api import FIXTURES, Api
from tests.support.pipeline import assert_extraction_matches, expected, wait_document
from tests.support.service import live_service

ANALYZED = [name for name, want in expected().items() if want["expect"] == "analyzed"]


async def test_every_fixture_ends_as_expected_with_its_clinical_content(database_url):
    async with live_service(database_url, None) as svc, httpx.AsyncClient(base_url=svc.base_url, timeout=30) as client:
        api = Api(client)
        _, case, token = await api.new_case("cabg")
        documents = {}
        for name in [*ANALYZED, "scanned_note_image_only.pdf"]:
            response = await api.upload(case["id"], token, name)
            assert response.status_code == 202, response.text
            assert response.json()["workflow_run_id"].startswith("wfr_")
            documents[name] = response.json()["document_id"]
        for name, document_id in documents.items():
            document = await wait_document(api, document_id, token)
            assert document["status"] == "analyzed", document
            assert_extraction_matches(name, document["extraction"], expected()[name])
        encrypted = await api.upload(case["id"], token, "encrypted_report.pdf")
        assert encrypted.status_code == 422 and "password" in encrypted.json()["detail"].lower()


async def test_image_only_document_ends_needs_ocr_when_ocr_is_unavailable(database_url):
    async with (
        live_service(database_url, None, ocr_enabled=False) as svc,
        httpx.AsyncClient(base_url=svc.base_url, timeout=30) as client,
    ):
        api = Api(client)
        _, case, token = await api.new_case("lumbar_microdiscectomy")
        response = await api.upload(case["id"], token, "scanned_note_image_only.pdf")
        document = await wait_document(api, response.json()["document_id"], token)
        assert document["status"] == "needs_ocr"
        assert "no text layer" in document["failure_reason"] and "OCR" in document["failure_reason"]


async def test_cardiology_summary_satisfies_the_bypass_requirements_and_lists_the_rest(database_url):
    async with live_service(database_url, None) as svc, httpx.AsyncClient(base_url=svc.base_url, timeout=30) as client:
        api = Api(client)
        _, case, token = await api.new_case("cabg")
        before = (await client.get(f"/cases/{case['id']}/requirements", headers=api.auth(token))).json()
        assert before["procedure"] == "cabg" and all(i["status"] == "missing" for i in before["items"])
        response = await api.upload(case["id"], token, "discharge_summary_cardiology.pdf")
        document = await wait_document(api, response.json()["document_id"], token)
        checklist = (await client.get(f"/cases/{case['id']}/requirements", headers=api.auth(token))).json()
        by_name = {item["requirement"].lower(): item for item in checklist["items"]}
        satisfied = {name for name, item in by_name.items() if item["status"] == "satisfied"}
        for needle in ("angiogra", "echocardiogra", "ecg", "hba1c", "creatinine"):
            matches = [name for name in satisfied if needle in name.replace("electrocardiogram", "ecg")]
            assert matches, (needle, sorted(satisfied))
        assert any(item["status"] == "missing" for item in checklist["items"])
        for item in checklist["items"]:
            if item["status"] == "satisfied":
                assert item["evidence"] and item["evidence"][0]["document_id"] == response.json()["document_id"]
        ehr = (await client.get(f"/cases/{case['id']}/ehr", headers=api.auth(token))).json()
        assert ehr["resourceType"] == "Bundle" and ehr["entry"]
        read = extract_pages(
            (FIXTURES / "discharge_summary_cardiology.pdf").read_bytes(), tessdata_prefix=None, engines=()
        )
        _assert_provenance(document, ehr, [page.text for page in read.pages])


def _assert_provenance(document: dict, ehr: dict, pages: list[str]) -> None:
    """Every fact of GET /documents/{id} and every resource of GET /cases/{id}/ehr says where it was read."""
    extraction = document["extraction"]
    facts = [
        item for field in ("conditions", "medications", "allergies", "labs", "studies") for item in extraction[field]
    ]
    facts.append({"provenance": extraction["procedure_provenance"]})
    for fact in facts:
        where = fact["provenance"]
        assert pages[where["page"] - 1][where["start"] : where["end"]] == where["text"] and where["rule"], fact
    resources = [e["resource"] for e in ehr["entry"]]
    assert {r["resourceType"] for r in resources} >= {
        "Condition",
        "MedicationStatement",
        "Observation",
        "ServiceRequest",
    }
    for resource in resources:
        [where] = provenance_of(resource)
        assert where["document"] == document["id"], resource
        assert pages[where["page"] - 1][where["start"] : where["end"]] == where["text"], resource
    coded = {r["code"]["coding"][0]["code"]: provenance_of(r)[0] for r in resources if r["resourceType"] == "Condition"}
    by_code = {c["code"]: c["provenance"] for c in extraction["conditions"]}
    assert coded == {
        code: {"document": document["id"], **{k: v for k, v in p.items() if k != "text" or v.strip()}}
        for code, p in by_code.items()
    }


@pytest.mark.parametrize(
    ("content", "status", "words"),
    [
        (b"", 400, "empty"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, 415, "png"),
        (b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog", 422, "incomplete"),
    ],
    ids=["empty", "png", "truncated"],
)
async def test_bad_uploads_get_a_clear_4xx_and_leave_the_case_untouched(database_url, tmp_path, content, status, words):
    async with (
        live_service(database_url, None, storage_dir=tmp_path / "storage") as svc,
        httpx.AsyncClient(base_url=svc.base_url, timeout=30) as client,
    ):
        api = Api(client)
        _, case, token = await api.new_case("cabg")
        response = await api.upload(case["id"], token, "x.pdf", content)
        assert response.status_code == status, response.text
        assert words in response.json()["detail"].lower()
        await _assert_no_documents(svc, case["id"], tmp_path / "storage")


async def test_upload_over_the_size_limit_is_refused_with_413(database_url, tmp_path):
    async with (
        live_service(database_url, None, storage_dir=tmp_path / "storage", max_upload_bytes=2048) as svc,
        httpx.AsyncClient(base_url=svc.base_url, timeout=30) as client,
    ):
        api = Api(client)
        _, case, token = await api.new_case("cabg")
        response = await api.upload(case["id"], token, "discharge_summary_cardiology.pdf")
        assert response.status_code == 413, response.text
        await _assert_no_documents(svc, case["id"], tmp_path / "storage")


async def _assert_no_documents(svc, case_id: str, storage_dir) -> None:
    from sqlalchemy import func, select

    from app.documents.models import Document
    from app.runtime.models import Event

    async with svc.services.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Document).where(Document.case_id == case_id)) == 0
        assert await session.scalar(select(func.count()).select_from(Event).where(Event.case_id == case_id)) == 0
    assert not [p for p in storage_dir.rglob("*") if p.is_file()]


def test_fixtures_are_present():
    assert (FIXTURES / "expected.json").is_file()


async def test_an_upload_while_qstash_refuses_publishes_is_recorded_with_its_run_and_analysed(database_url):
    """QStash refusing publishes at upload time loses nothing: the run is recorded with the document,
    the serving process analyses it at once (no message needed), and its start's outbox row is the
    safety net until that drive is done (or, had the drive needed QStash, until the sweep got through)."""
    from app.runtime.models import WorkflowRun
    from tests.support.faults import FailingPublishes

    edge: dict[str, FailingPublishes] = {}

    def wrap(app):  # noqa: ANN001, ANN202
        edge["qstash"] = FailingPublishes(app)
        return edge["qstash"]

    async with (
        live_service(database_url, None, wrap=wrap) as svc,
        httpx.AsyncClient(base_url=svc.base_url, timeout=30) as client,
    ):
        api = Api(client)
        _, case, token = await api.new_case("cabg")
        edge["qstash"].fail_next(3)
        response = await api.upload(case["id"], token, "discharge_summary_cardiology.pdf")
        assert response.status_code == 202, response.text
        run_id = response.json()["workflow_run_id"]
        async with svc.services.sessions() as session:
            run = await session.get(WorkflowRun, run_id)
        assert run is not None and run.labels["document_id"] == response.json()["document_id"]
        document = await wait_document(api, response.json()["document_id"], token)
        assert document["status"] == "analyzed", document
        await svc.settled(run_id)  # and its outbox row is gone: nothing left to send
