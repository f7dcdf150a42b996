"""Settings refuse what is unsafe outside development, name the setting, and never show a secret."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import pytest
from pydantic import ValidationError

from app.config import DEV_AUTH_SECRET, DEV_QSTASH_TOKEN, Settings
from app.runtime.signing import sign, verify

SAFE_PRODUCTION: dict[str, Any] = {
    "env": "production",
    "database_url": "postgresql://curaway:pw@db.internal:5432/curaway",
    "public_base_url": "https://pipelines.example.org",
    "qstash_url": "https://qstash.upstash.io",
    "qstash_token": "qstash-token-0123456789abcdef",
    "qstash_current_signing_key": "sig_current_0123456789abcdefghij",
    "qstash_next_signing_key": "sig_next_0123456789abcdefghijklm",
    "ops_token": "ops-token-0123456789abcdef0123456789",
    "auth_secret": "auth-secret-0123456789abcdef0123456789",
    "storage_backend": "s3",
    "s3_bucket": "documents",
    "s3_access_key_id": "AKIAEXAMPLE",
    "s3_secret_access_key": "s3-secret-0123456789",
}


def settings(**overrides: Any) -> Settings:
    return Settings(_env_file=None, **{**SAFE_PRODUCTION, **overrides})  # type: ignore[call-arg]


def test_safe_production_settings_are_accepted():
    assert settings().env == "production"


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"qstash_token": DEV_QSTASH_TOKEN}, "QSTASH_TOKEN"),
        ({"auth_secret": DEV_AUTH_SECRET}, "AUTH_SECRET"),
        ({"ops_token": "dev-ops-token"}, "OPS_TOKEN"),
        ({"auth_secret": "x" * 31}, "AUTH_SECRET is shorter than 32 bytes"),
        ({"ops_token": ""}, "OPS_TOKEN is shorter"),
        ({"qstash_next_signing_key": ""}, "QSTASH_NEXT_SIGNING_KEY is empty"),
        ({"database_url": "sqlite+aiosqlite:///var/curaway.db"}, "DATABASE_URL is SQLite"),
        ({"public_base_url": ""}, "PUBLIC_BASE_URL"),
        ({"public_base_url": "http://pipelines.example.org"}, "PUBLIC_BASE_URL"),
        ({"qstash_url": ""}, "QSTASH_URL is unset"),
        ({"devqstash_enabled": True}, "DEVQSTASH_ENABLED"),
        ({"storage_backend": "local"}, "STORAGE_BACKEND=local"),
    ],
)
def test_each_unsafe_setting_is_refused_in_production_by_name(override, named):
    with pytest.raises(ValidationError, match=named):
        settings(**override)


LOCAL_STAND_INS: dict[str, Any] = {
    "database_url": "sqlite+aiosqlite:///x.db",
    "public_base_url": "",
    "qstash_url": "",
    "storage_backend": "local",
}


@pytest.mark.parametrize(
    ("host", "public_base_url"),
    [("127.0.0.1", ""), ("127.0.0.1", "http://127.0.0.1:8123"), ("localhost", "http://localhost:8000/"), ("::1", "")],
)
def test_test_env_refuses_short_secrets_but_keeps_local_stand_ins_on_a_machine_local_service(host, public_base_url):
    local = {**LOCAL_STAND_INS, "host": host, "public_base_url": public_base_url}
    assert settings(env="test", **local).embedded_qstash
    assert settings(env="test", webhook_allow_private_urls=True, **local).webhook_allow_private_urls
    with pytest.raises(ValidationError, match="AUTH_SECRET is shorter"):
        settings(env="test", auth_secret="short", **local)
    assert settings(env="development", auth_secret="short", **local).env == "development"


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"database_url": "sqlite+aiosqlite:///var/curaway.db"}, "DATABASE_URL is SQLite"),
        ({"public_base_url": "http://pipelines.example.org"}, "PUBLIC_BASE_URL must be"),
        ({"qstash_url": ""}, "QSTASH_URL is unset"),
        ({"devqstash_enabled": True}, "DEVQSTASH_ENABLED"),
        ({"storage_backend": "local"}, "STORAGE_BACKEND=local"),
        ({"webhook_allow_private_urls": True}, "WEBHOOK_ALLOW_PRIVATE_URLS"),
        ({"host": "0.0.0.0", "public_base_url": ""}, "PUBLIC_BASE_URL must be"),
    ],
)
def test_test_env_reachable_beyond_the_machine_refuses_each_local_stand_in_by_name(override, named):
    """A deployment with ENV=test is not a loophole: on a public URL it gets production's refusals."""
    assert settings(env="test").env == "test"  # the safe production settings pass with ENV=test too
    with pytest.raises(ValidationError, match=named):
        settings(env="test", **{"host": "0.0.0.0", **override})


@pytest.mark.parametrize(
    ("host", "public_base_url"),
    [("0.0.0.0", ""), ("127.0.0.1", "http://pipelines.example.org"), ("10.0.0.5", "http://127.0.0.1:8000")],
)
def test_test_env_with_all_stand_ins_off_the_machine_names_each_and_why(host, public_base_url):
    with pytest.raises(ValidationError) as refused:
        settings(env="test", **{**LOCAL_STAND_INS, "host": host, "public_base_url": public_base_url})
    message = str(refused.value)
    for named in ("DATABASE_URL", "PUBLIC_BASE_URL must be", "QSTASH_URL", "STORAGE_BACKEND", f"HOST={host}"):
        assert named in message, (named, message)


def test_secrets_never_appear_in_repr_or_dumps():
    shown = f"{settings()!r} {settings()} {settings().model_dump()}"
    for name in ("qstash_token", "qstash_current_signing_key", "ops_token", "auth_secret", "s3_secret_access_key"):
        assert SAFE_PRODUCTION[name] not in shown, name


def test_signing_keys_rotate_without_downtime():
    """Upstash rotation: next becomes current and a new next appears. A message signed with either
    key the deployment holds is accepted, before and after the deployment takes the new pair."""
    url, body = "https://pipelines.example.org/workflows/x", b"{}"
    before = settings(qstash_current_signing_key="sig_A" * 7, qstash_next_signing_key="sig_B" * 7)
    after = settings(qstash_current_signing_key="sig_B" * 7, qstash_next_signing_key="sig_C" * 7)
    for key in ("sig_A" * 7, "sig_B" * 7):
        verify(sign(body, url, key), body, url, before.signing_keys)
    for key in ("sig_B" * 7, "sig_C" * 7):
        verify(sign(body, url, key), body, url, after.signing_keys)


async def test_curaway_serve_outside_development_exits_naming_the_unsafe_setting(tmp_path):
    env = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    env.update({k.upper(): str(v) for k, v in SAFE_PRODUCTION.items()})
    env["STORAGE_BACKEND"] = "local"
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app.cli", "serve", "--port", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "STORAGE_BACKEND=local" in result.stderr and "Traceback" not in result.stderr
    assert SAFE_PRODUCTION["auth_secret"] not in result.stderr + result.stdout


def test_migrations_are_found_in_a_checkout_or_where_migrations_dir_says(tmp_path):
    from app.migrate import MigrationsNotFound, locate_migrations

    assert (locate_migrations() / "env.py").is_file()
    with pytest.raises(MigrationsNotFound, match="set MIGRATIONS_DIR"):
        locate_migrations(tmp_path)


def test_our_http_clients_drop_idle_connections_before_our_server_closes_them():
    """Else a request sent as uvicorn closes an idle keep-alive connection fails with ReadError."""
    import uvicorn

    from app.config import HTTP_KEEPALIVE_S

    assert uvicorn.Config(app=None).timeout_keep_alive > HTTP_KEEPALIVE_S  # what `make run` serves with
