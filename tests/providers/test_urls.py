"""Webhook URLs must be https and must not reach our own network (SSRF), at registration and send."""

from __future__ import annotations

import httpx
import pytest

from app.config import Settings
from app.providers.sender import send
from app.providers.urls import UnsafeWebhookURL, is_public, resolve_target
from tests.support.api import Api
from tests.support.receivers import always, receivers
from tests.support.service import live_service

REFUSED = [
    "http://hospital.example.org/hook",  # plain http
    "https://127.0.0.1/hook",  # loopback
    "https://localhost/hook",  # a DNS name that resolves to loopback
    "https://10.1.2.3/hook",  # private
    "https://192.168.0.10/hook",
    "https://169.254.169.254/latest/meta-data",  # link-local: the cloud metadata service
    "https://metadata.google.internal/computeMetadata/v1",
    "https://[::1]/hook",
    "https://[::ffff:127.0.0.1]/hook",  # loopback inside an IPv4-mapped IPv6 address
    "https://100.64.0.1/hook",  # shared address space
    "https://user:pw@hospital.example.org/hook",
    "ftp://hospital.example.org/hook",
]


@pytest.mark.parametrize("url", REFUSED)
async def test_unsafe_webhook_urls_are_refused(url):
    with pytest.raises(UnsafeWebhookURL):
        await resolve_target(url, allow_private=False)


async def test_public_addresses_pass_and_local_ones_pass_only_when_allowed():
    assert is_public("8.8.8.8") and is_public("2001:4860:4860::8888")
    assert not any(is_public(a) for a in ("127.0.0.1", "10.0.0.1", "169.254.169.254", "fd00:ec2::254", "::"))
    target = await resolve_target("http://localhost:8080/hook", allow_private=True)
    assert target.host == "localhost" and target.addresses


def test_private_webhook_urls_are_refused_as_a_setting_in_production():
    with pytest.raises(ValueError, match="WEBHOOK_ALLOW_PRIVATE_URLS"):
        Settings(
            _env_file=None,
            env="production",
            webhook_allow_private_urls=True,  # type: ignore[call-arg]
            qstash_token="t",
            qstash_current_signing_key="a",
            qstash_next_signing_key="b",
            ops_token="o",
            auth_secret="s" * 40,
        )


async def test_the_url_is_checked_again_at_send_time_and_nothing_is_sent():
    async with receivers(hook=always(200)) as hooks, httpx.AsyncClient() as http:
        result = await send(http, hooks.url("hook"), "{}", {}, timeout_s=1, allow_private=False, excerpt_chars=100)
        assert result.outcome == "dead_lettered" and "refused" in (result.error or "")
        assert hooks["hook"].seen == []


async def test_registering_a_provider_refuses_local_urls_outside_development_settings(database_url):
    async with (
        live_service(database_url, None, embedding_warm_up=False) as svc,
        httpx.AsyncClient(base_url=svc.base_url) as client,
    ):
        api = Api(client)
        for url in ("https://localhost/hook", "https://169.254.169.254/", "http://hospital.example.org/hook"):
            response = await client.post("/providers", json={"name": "H", "webhook_url": url}, headers=api.ops)
            assert response.status_code == 400, (url, response.text)
            assert "webhook URL" in response.json()["detail"]
        assert (await client.get("/providers", headers=api.ops)).json()["items"] == []
