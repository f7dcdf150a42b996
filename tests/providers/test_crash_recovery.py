"""SIGKILL while deliveries are retrying, restart with the settings `make run` ships: every
delivery still ends delivered or dead-lettered, with one webhook-id each, and no receiver accepts
a delivery twice."""

from __future__ import annotations

import asyncio
import json
import signal

import httpx
import pytest

from tests.providers.support import by_provider, consent, forward, register, wait_forwarding
from tests.support.api import Api
from tests.support.processes import free_port, start_server, stop, wait_healthy
from tests.support.receivers import always, fails_then, receivers

pytestmark = pytest.mark.slow

# Product settings of the scenario (the hospitals'); the runtime's settings are the shipped ones.
SCENARIO = {
    "webhook_allow_private_urls": True,
    "webhook_timeout_s": 2.0,
    "webhook_max_attempts": 3,
    "webhook_backoff_initial_s": 1.0,
    "embedding_warm_up": False,
}


async def test_sigkill_while_deliveries_retry_every_delivery_still_ends_and_none_is_accepted_twice(
    database_url, tmp_path
):
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        "CURAWAY_TEST_SHIPPED": "1",
        "CURAWAY_TEST_WORKFLOWS": "pipelines",
        "CURAWAY_TEST_SETTINGS": json.dumps({"storage_dir": str(tmp_path / "storage"), **SCENARIO}),
    }
    log = tmp_path / "server.log"
    behaviours = {"ok": always(200), "flaky": fails_then(2, 503), "busy": fails_then(1, 429), "down": always(500)}
    process = start_server(port, database_url, log, env=env)
    try:
        async with receivers(**behaviours) as hooks, httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            hooks["busy"].extra_headers = {"Retry-After": "1"}
            await wait_healthy(base_url, process, log)
            api = Api(client)
            ids = await register(api, hooks, *behaviours)
            _, case, token = await api.new_case("cabg")
            await consent(api, case["id"], token, list(ids.values()))
            accepted = await forward(api, case["id"], token, list(ids.values()))
            await asyncio.wait_for(asyncio.gather(*(hooks[n].first_request.wait() for n in ("flaky", "down"))), 60)
            process.send_signal(signal.SIGKILL)  # the failing ones are between attempts now
            process.wait(timeout=10)

            process = start_server(port, database_url, log, env=env)
            await wait_healthy(base_url, process, log)
            forwarding = await wait_forwarding(api, accepted["forwarding_id"], token, timeout=60)
        outcome = by_provider(forwarding, ids)
        assert {n: p["status"] for n, p in outcome.items()} == {
            "ok": "delivered",
            "flaky": "delivered",
            "busy": "delivered",
            "down": "dead_lettered",
        }, log.read_text()[-3000:]
        assert outcome["down"]["attempts"] == 3
        for name in behaviours:
            assert hooks[name].ids == {outcome[name]["delivery_id"]}, name  # one webhook-id across the restart
            assert all(s.verified for s in hooks[name].seen), name
            assert len(hooks[name].accepted) == (0 if name == "down" else 1), name
    finally:
        stop(process)
