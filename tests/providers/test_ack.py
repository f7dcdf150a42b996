"""Acknowledgements: a hospital acknowledges with the token its payload carried; silence escalates."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import select

from app.runtime.models import Event
from tests.providers.support import SCENARIO, by_provider, consent, forward, wait_forwarding
from tests.support.api import Api
from tests.support.receivers import always, receivers
from tests.support.service import live_service


async def test_an_acknowledged_delivery_is_recorded_and_a_missing_acknowledgement_escalates(database_url):
    settings = {**SCENARIO, "webhook_ack_timeout_s": 6.0}  # long enough for a loaded machine to answer
    async with (
        receivers(acks=always(200), silent=always(200)) as hooks,
        live_service(database_url, None, **settings) as svc,
        httpx.AsyncClient(base_url=svc.base_url, timeout=30) as client,
    ):
        api = Api(client)
        ids = {}
        for name in ("acks", "silent"):
            body = {"name": name, "webhook_url": hooks.url(name), "ack_required": True}
            created = (await client.post("/providers", json=body, headers=api.ops)).json()
            hooks[name].secrets, ids[name] = [created["webhook_secret"]], created["id"]
        _, case, token = await api.new_case("cabg")
        await consent(api, case["id"], token, list(ids.values()))
        accepted = await forward(api, case["id"], token, list(ids.values()))

        await asyncio.wait_for(hooks["acks"].first_request.wait(), 60)
        ack = hooks["acks"].seen[0].body["data"]["ack"]
        path = httpx.URL(ack["url"]).path
        forged = await client.post(path, json={"token": ack["token"][:-2] + "xx"})
        assert forged.status_code == 401
        assert (await client.post(path, json={"token": ack["token"]})).status_code == 202

        forwarding = await wait_forwarding(api, accepted["forwarding_id"], token)
        outcome = by_provider(forwarding, ids)
        assert outcome["acks"]["status"] == outcome["silent"]["status"] == "delivered"
        async with svc.services.sessions() as session:
            rows = await session.scalars(
                select(Event).where(Event.type.in_(["webhook.acknowledged", "webhook.ack_overdue"]))
            )
            events = {e.payload["provider_id"]: e.type for e in rows}
        assert events == {ids["acks"]: "webhook.acknowledged", ids["silent"]: "webhook.ack_overdue"}
        delivery = (await client.get(f"/deliveries/{outcome['acks']['delivery_id']}", headers=api.ops)).json()
        assert delivery["acknowledged_at"] is not None
