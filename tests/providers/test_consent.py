"""Consents: granted with who and when, revoked, expired; and no request after consent ends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select

from app.consents.models import Consent
from app.db import transaction
from app.runtime.models import Event
from tests.providers.support import SCENARIO, by_provider, consent, forward, register, wait_forwarding
from tests.support.api import Api
from tests.support.receivers import always, receivers
from tests.support.service import live_service


async def test_consent_revoked_or_expired_while_a_delivery_waits_to_retry_stops_every_further_request(database_url):
    settings = {**SCENARIO, "webhook_max_attempts": 5, "webhook_backoff_initial_s": 2.0, "webhook_backoff_jitter": 0.0}
    async with (
        receivers(revoked=always(503), expiring=always(503)) as hooks,
        live_service(database_url, None, **settings) as svc,
        httpx.AsyncClient(base_url=svc.base_url, timeout=30) as client,
    ):
        api = Api(client)
        ids = await register(api, hooks, "revoked", "expiring")
        _, case, token = await api.new_case("cabg")
        granted = await consent(api, case["id"], token, [ids["revoked"]])
        expiring = await consent(api, case["id"], token, [ids["expiring"]])
        accepted = await forward(api, case["id"], token, list(ids.values()))

        # Both got their first attempt (503) and wait 2 s to retry; meanwhile one consent is
        # revoked and the other's expiry passes (the row's end moved to the past: the clock moved on).
        await asyncio.wait_for(asyncio.gather(*(hooks[n].first_request.wait() for n in ids)), 60)
        revoked = await client.delete(f"/consents/{granted[0]['id']}", headers=api.auth(token))
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["status"] == "revoked" and revoked.json()["revoked_by"].startswith("patient:")
        async with transaction(svc.services.sessions) as session:
            row = await session.get(Consent, expiring[0]["id"])
            row.expires_at = datetime.now(UTC) - timedelta(seconds=1)

        forwarding = await wait_forwarding(api, accepted["forwarding_id"], token)
        outcome = by_provider(forwarding, ids)
        assert [len(hooks[n].seen) for n in ("revoked", "expiring")] == [1, 1]  # nothing after consent ended
        assert outcome["revoked"]["status"] == outcome["expiring"]["status"] == "skipped_no_consent"
        assert "revoked" in outcome["revoked"]["reason"] and "expired" in outcome["expiring"]["reason"]
        listed = (await client.get(f"/cases/{case['id']}/consents", headers=api.auth(token))).json()["items"]
        assert sorted(c["status"] for c in listed) == ["expired", "revoked"]
        async with svc.services.sessions() as session:
            types = list(await session.scalars(select(Event.type).where(Event.case_id == case["id"])))
        assert types.count("consent.granted") == 2 and types.count("consent.revoked") == 1


async def test_consent_routes_check_the_patient_and_the_input(database_url):
    async with (
        receivers(a=always(200)) as hooks,
        live_service(database_url, None, **SCENARIO) as svc,
        httpx.AsyncClient(base_url=svc.base_url) as client,
    ):
        api = Api(client)
        ids = await register(api, hooks, "a")
        _, case, token = await api.new_case("cabg")
        _, _, stranger = await api.new_case("cabg", name="Someone Else")
        future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        url = f"/cases/{case['id']}/consents"
        refused = await client.post(
            url, json={"provider_ids": [ids["a"]], "expires_at": future}, headers=api.auth(stranger)
        )
        assert refused.status_code == 403
        past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
        stale = await client.post(url, json={"provider_ids": [ids["a"]], "expires_at": past}, headers=api.auth(token))
        assert stale.status_code == 400 and "past" in stale.json()["detail"]
        unknown = await client.post(
            url, json={"provider_ids": ["prov_nope"], "expires_at": future}, headers=api.auth(token)
        )
        assert unknown.status_code == 400 and "prov_nope" in unknown.json()["detail"]
        granted = await consent(api, case["id"], token, [ids["a"]])
        assert granted[0]["status"] == "active" and granted[0]["granted_by"].startswith("patient:")
        other = await client.delete(f"/consents/{granted[0]['id']}", headers=api.auth(stranger))
        assert other.status_code == 403
        assert (await client.get(url, headers=api.auth(stranger))).status_code == 403
        forwarding = await client.post(
            f"/cases/{case['id']}/forwardings", json={"provider_ids": [ids["a"]]}, headers=api.auth(stranger)
        )
        assert forwarding.status_code == 403
        as_patient = await client.post(
            "/providers", json={"name": "x", "webhook_url": hooks.url("a")}, headers=api.auth(token)
        )
        assert as_patient.status_code == 403
