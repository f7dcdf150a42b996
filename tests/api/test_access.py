"""Access control: ops and patient tokens, and a patient reaching only their own data."""

from __future__ import annotations

import httpx

from tests.support.api import Api
from tests.support.service import live_service


async def test_patient_routes_need_a_token_and_the_right_patient(database_url):
    async with live_service(database_url, None) as svc, httpx.AsyncClient(base_url=svc.base_url) as client:
        api = Api(client)
        assert (await client.post("/patients", json={"name": "X", "email": "x@example.org"})).status_code == 401
        _, case, token = await api.new_case()
        _, other_case, other_token = await api.new_case(name="Bob Other")
        # A patient may not create patients (ops only).
        refused = await client.post("/patients", json={"name": "X", "email": "x@example.org"}, headers=api.auth(token))
        assert refused.status_code == 403
        # Their own case: yes. Someone else's case, checklist, record, events, uploads: 403.
        assert (await client.get(f"/cases/{case['id']}", headers=api.auth(token))).status_code == 200
        for path in ("", "/requirements", "/ehr", "/events"):
            response = await client.get(f"/cases/{other_case['id']}{path}", headers=api.auth(token))
            assert response.status_code == 403, path
        upload = await api.upload(other_case["id"], token, "lab_report_panel.pdf")
        assert upload.status_code == 403
        # Ops reach everything.
        assert (await client.get(f"/cases/{other_case['id']}/requirements", headers=api.ops)).status_code == 200
        # The other patient's document is out of reach too.
        accepted = await api.upload(other_case["id"], other_token, "lab_report_panel.pdf")
        assert accepted.status_code == 202, accepted.text
        document = await client.get(f"/documents/{accepted.json()['document_id']}", headers=api.auth(token))
        assert document.status_code == 403
        assert (await client.get(f"/documents/{accepted.json()['document_id']}", headers=api.auth(other_token))).status_code == 200


async def test_bad_tokens_get_401_with_a_reason(database_url):
    async with live_service(database_url, None) as svc, httpx.AsyncClient(base_url=svc.base_url) as client:
        for token in ("garbage", "eyJhbGciOiJIUzI1NiJ9.e30.x"):
            response = await client.get("/cases/case_x", headers=Api.auth(token))
            assert response.status_code == 401 and "token" in response.json()["detail"]
        missing = await client.get("/cases/case_x")
        assert missing.status_code == 401 and "Bearer" in missing.json()["detail"]


async def test_dev_token_route_exists_only_in_development(database_url):
    secrets = {"qstash_token": "t" * 40, "qstash_current_signing_key": "k" * 32, "qstash_next_signing_key": "n" * 32,
               "ops_token": "o" * 32, "auth_secret": "s" * 40}
    async with live_service(database_url, None, env="test", **secrets) as svc, httpx.AsyncClient(base_url=svc.base_url) as client:
        assert (await client.post("/auth/dev-token", json={"sub": "ops"})).status_code == 404


async def test_creating_a_case_with_an_unknown_procedure_or_patient_is_refused(database_url):
    async with live_service(database_url, None) as svc, httpx.AsyncClient(base_url=svc.base_url) as client:
        api = Api(client)
        patient, _, _ = await api.new_case()
        unknown = await client.post("/cases", json={"patient_id": patient["id"], "procedure": "teleportation"}, headers=api.ops)
        assert unknown.status_code == 400 and "cabg" in unknown.json()["detail"]
        nobody = await client.post("/cases", json={"patient_id": "pat_nobody", "procedure": "cabg"}, headers=api.ops)
        assert nobody.status_code == 404
        bad_email = await client.post("/patients", json={"name": "X", "email": "not-an-email"}, headers=api.ops)
        assert bad_email.status_code == 422
