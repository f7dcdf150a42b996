"""The circuit breaker per provider: a down hospital costs one probe per cool-down, not retries."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import select

from app.runtime.models import Event, WorkflowStep
from tests.providers.support import SCENARIO, by_provider, consent, forward, register, wait_forwarding
from tests.support.api import Api
from tests.support.receivers import always, receivers
from tests.support.service import live_service

SETTINGS = {
    **SCENARIO,
    "circuit_failure_threshold": 2,
    "circuit_cooldown_s": 1.0,
    "webhook_max_attempts": 20,
    "webhook_backoff_initial_s": 0.5,
    "webhook_backoff_factor": 1.0,
}


async def _circuit_events(svc) -> list[str]:
    async with svc.services.sessions() as session:
        query = select(Event.type).where(Event.type.startswith("circuit.")).order_by(Event.id)
        return list(await session.scalars(query))


async def _wait_for(svc, predicate, timeout: float = 20) -> list[str]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        events = await _circuit_events(svc)
        if predicate(events):
            return events
        assert asyncio.get_running_loop().time() < deadline, events
        await asyncio.sleep(0.05)


async def test_an_open_circuit_holds_a_down_providers_deliveries_until_one_probe_succeeds(database_url):
    async with (
        receivers(down=always(500), healthy=always(200)) as hooks,
        live_service(database_url, None, **SETTINGS) as svc,
        httpx.AsyncClient(base_url=svc.base_url, timeout=30) as client,
    ):
        api = Api(client)
        ids = await register(api, hooks, "down", "healthy")
        started = []
        for i in range(3):  # three cases forwarded to the same hospital
            _, case, token = await api.new_case("cabg", name=f"Patient {i}")
            wanted = list(ids.values()) if i == 0 else [ids["down"]]
            await consent(api, case["id"], token, wanted)
            started.append((await forward(api, case["id"], token, wanted), token))

        # open, then a probe that fails (half_open -> open): only then does the hospital come back
        await _wait_for(svc, lambda e: e[:3] == ["circuit.open", "circuit.half_open", "circuit.open"])
        failed_while_down = len(hooks["down"].seen)
        hooks["down"].status_for = always(200)
        results = [await wait_forwarding(api, f["forwarding_id"], token) for f, token in started]

        assert [by_provider(r, ids)["down"]["status"] for r in results] == ["delivered"] * 3
        assert by_provider(results[0], ids)["healthy"]["attempts"] == 1  # other providers are unaffected
        assert len(hooks["down"].accepted) == 3 and len(set(hooks["down"].accepted)) == 3
        # While down: each delivery's first attempt (at most 3, before the circuit opened) and one
        # probe. Without the breaker the three would have retried every ~0.5 s meanwhile.
        assert failed_while_down <= 4, failed_while_down
        events = await _circuit_events(svc)
        assert events[-2:] == ["circuit.half_open", "circuit.closed"], events
        async with svc.services.sessions() as session:  # the probe's success woke the held ones
            names = list(await session.scalars(select(WorkflowStep.name).where(WorkflowStep.status == "completed")))
        assert sum(n.startswith("circuit-closed-") for n in names) == 1
        assert sum(n.startswith("circuit-wait-") for n in names) >= 2
        provider = (await client.get(f"/providers/{ids['down']}", headers=api.ops)).json()
        assert provider["circuit_state"] == "closed" and provider["consecutive_failures"] == 0
