"""Helpers for forwarding tests: register receivers as providers, consent, forward, wait."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.api import Api
from tests.support.receivers import Receivers

# Product settings for these scenarios: short but realistic backoff, a short timeout, webhooks
# to 127.0.0.1 allowed (development and tests only).
SCENARIO = {
    "embedding_warm_up": False,
    "progress_poll_s": 0.05,
    "webhook_allow_private_urls": True,
    "webhook_timeout_s": 2.0,  # a loaded CI machine must never time out a receiver that answers at once
    "webhook_max_attempts": 3,
    "webhook_backoff_initial_s": 0.5,
    "webhook_backoff_factor": 2.0,
    "circuit_failure_threshold": 50,
}


async def register(api: Api, hooks: Receivers, *names: str) -> dict[str, str]:
    """A provider per receiver (ops); each receiver learns its secret. Returns name -> provider ID."""
    ids = {}
    for name in names:
        response = await api.client.post(
            "/providers", json={"name": name, "webhook_url": hooks.url(name)}, headers=api.ops
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["webhook_secret"].startswith("whsec_")
        hooks[name].secrets = [body["webhook_secret"]]
        ids[name] = body["id"]
    return ids


async def consent(
    api: Api, case_id: str, token: str, provider_ids: list[str], seconds: float = 3600
) -> list[dict[str, Any]]:
    expires = (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()
    response = await api.client.post(
        f"/cases/{case_id}/consents",
        json={"provider_ids": provider_ids, "expires_at": expires},
        headers=api.auth(token),
    )
    assert response.status_code == 201, response.text
    return response.json()["items"]


async def forward(api: Api, case_id: str, token: str, provider_ids: list[str]) -> dict[str, Any]:
    response = await api.client.post(
        f"/cases/{case_id}/forwardings", json={"provider_ids": provider_ids}, headers=api.auth(token)
    )
    assert response.status_code == 202, response.text
    return response.json()


async def wait_forwarding(api: Api, forwarding_id: str, token: str, timeout: float = 30) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        response = await api.client.get(f"/forwardings/{forwarding_id}", headers=api.auth(token))
        assert response.status_code == 200, response.text
        if response.json()["status"] == "completed":
            return response.json()
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"forwarding {forwarding_id} still running after {timeout}s: {response.json()}")
        await asyncio.sleep(0.1)


def by_provider(forwarding: dict[str, Any], ids: dict[str, str]) -> dict[str, dict[str, Any]]:
    names = {v: k for k, v in ids.items()}
    return {names[p["provider_id"]]: p for p in forwarding["providers"]}
