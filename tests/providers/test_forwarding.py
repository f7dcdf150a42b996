"""Provider forwarding end to end: real receivers on 127.0.0.1 verify every signature."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import select

from app.demo.stream import read_events
from app.devqstash.models import QStashMessage
from app.providers import deliveries
from app.runtime.models import Event, WorkflowRun
from tests.providers.support import SCENARIO, by_provider, consent, forward, register, wait_forwarding
from tests.support.api import Api
from tests.support.receivers import SLOW, always, fails_then, receivers
from tests.support.service import live_service


async def _outcomes_on_stream(client: httpx.AsyncClient, case_id: str, token: str) -> list[dict]:
    """The patient's SSE events of the case until the forwarding completes."""
    seen = []
    async with client.stream("GET", f"/cases/{case_id}/events?access_token={token}", timeout=60) as response:
        async for event in read_events(response):
            seen.append(event.json())
            if event.event == "forwarding.completed":
                return seen
    return seen


async def test_five_receivers_and_one_without_consent_end_as_they_should(database_url):
    hooks_ctx = receivers(
        ok=always(200),
        flaky=fails_then(2, 503),
        bad=always(400),
        down=always(500),
        slow=always(SLOW),
        nocon=always(200),
    )
    async with (
        hooks_ctx as hooks,
        live_service(database_url, None, **SCENARIO) as svc,
        httpx.AsyncClient(base_url=svc.base_url, timeout=30) as client,
    ):
        api = Api(client)
        ids = await register(api, hooks, "ok", "flaky", "bad", "down", "slow", "nocon")
        _, case, token = await api.new_case("cabg")
        await consent(api, case["id"], token, [ids[n] for n in ("ok", "flaky", "bad", "down", "slow")])
        stream = asyncio.create_task(_outcomes_on_stream(client, case["id"], token))

        accepted = await forward(api, case["id"], token, list(ids.values()))
        again = await client.post(
            f"/cases/{case['id']}/forwardings", json={"provider_ids": [ids["down"]]}, headers=api.auth(token)
        )
        assert again.status_code == 409 and "still running" in again.json()["detail"]

        await asyncio.wait_for(hooks["flaky"].first_request.wait(), 60)  # rotate between its attempts
        rotated = await client.post(f"/providers/{ids['flaky']}/rotate-secret", headers=api.ops)
        assert rotated.status_code == 200 and rotated.json()["webhook_secret"].startswith("whsec_")
        hooks["flaky"].secrets.append(rotated.json()["webhook_secret"])  # later attempts verify with both

        forwarding = await wait_forwarding(api, accepted["forwarding_id"], token)
        outcome = by_provider(forwarding, ids)
        assert {n: (p["status"], p["attempts"], p["last_status"]) for n, p in outcome.items()} == {
            "ok": ("delivered", 1, 200),
            "flaky": ("delivered", 3, 200),
            "bad": ("dead_lettered", 1, 400),
            "down": ("dead_lettered", 3, 500),
            "slow": ("dead_lettered", 3, None),
            "nocon": ("skipped_no_consent", 0, None),
        }
        assert "consent" in outcome["nocon"]["reason"]
        assert hooks["nocon"].seen == []
        for name in ("ok", "flaky", "bad", "down", "slow"):
            receiver = hooks[name]
            assert all(s.verified for s in receiver.seen), name
            assert receiver.ids == {outcome[name]["delivery_id"]}, name  # one webhook-id across attempts
        assert [len(hooks[n].accepted) for n in ("ok", "flaky")] == [1, 1]
        assert hooks["ok"].seen[0].at < hooks["down"].seen[-1].at  # the healthy one did not wait
        body = hooks["ok"].seen[0].body
        assert body["type"] == "case.forwarded" and body["data"]["ehr"]["resourceType"] == "Bundle"
        assert body["data"]["on_site_tests"]["missing"], body["data"]["on_site_tests"]

        events = await asyncio.wait_for(stream, 60)
        told = {e["payload"]["provider_id"]: e["type"] for e in events if e["type"].startswith("forwarding.provider_")}
        assert told == {ids[n]: f"forwarding.provider_{p['status']}" for n, p in outcome.items()}

        async with svc.services.sessions() as session:
            attempts = list(await session.scalars(select(Event).where(Event.type == "webhook.attempt")))
            bodies = list(await session.scalars(select(QStashMessage.body)))
        assert len(attempts) == 11
        assert {a.payload["status_code"] for a in attempts} == {200, 503, 400, 500, None}
        assert all(a.payload["latency_ms"] is not None for a in attempts)
        assert not any(b"Bundle" in b or b"Ada Patient" in b for b in bodies)  # no patient data via QStash

        history = (await client.get(f"/providers/{ids['down']}/deliveries", headers=api.ops)).json()["items"]
        assert [(h["status_code"], "down says 500" in h["response_excerpt"]) for h in history[0]["history"]] == [
            (500, True)
        ] * 3

        async with svc.services.sessions() as session:
            dead = await deliveries.list_dead_letters(session)
        assert {d.provider_id for d in dead} == {ids["bad"], ids["down"], ids["slow"]}
        hooks["bad"].status_for = always(200)
        listed = (await client.get("/ops/dlq", params={"source": "webhook"}, headers=api.ops)).json()["items"]
        assert {letter["id"] for letter in listed} == {f"webhook:{d.id}" for d in dead}
        assert all(letter["body"] is None for letter in listed)  # no patient data on the ops page
        bad_letter = f"webhook:{outcome['bad']['delivery_id']}"
        replayed = (await client.post(f"/ops/dlq/{bad_letter}/replay", headers=api.ops)).json()
        replay = {"workflow_run_id": replayed["message_id"]}
        async with svc.services.sessions() as session:
            reset = await deliveries.get_delivery(session, delivery_id=outcome["bad"]["delivery_id"])
            run = await session.get(WorkflowRun, replay["workflow_run_id"])
        assert (reset.series, reset.workflow_run_id) == (1, run.id)  # its status: as far as the eager drive got
        again = await client.post(f"/deliveries/{outcome['ok']['delivery_id']}/replay", headers=api.ops)
        assert again.status_code == 409 and "dead-lettered" in again.json()["detail"]
        await svc.wait(replay["workflow_run_id"], timeout=60)
        forwarding = await wait_forwarding(api, accepted["forwarding_id"], token)
        assert by_provider(forwarding, ids)["bad"]["status"] == "delivered"
        assert hooks["bad"].accepted == [outcome["bad"]["delivery_id"]]  # the same webhook-id, replayed

        _, _, stranger = await api.new_case("cabg", name="Someone Else")
        denied = await client.get(f"/forwardings/{accepted['forwarding_id']}", headers=api.auth(stranger))
        assert denied.status_code == 403
