"""Settings: the one reader of the environment.

Every other module receives a `Settings` instance (or values taken from it) through a
constructor or a FastAPI dependency. Outside `ENV=development` the public development
credentials of Upstash's local QStash server are refused, so a production deployment
can never run with keys that are printed in documentation.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Upstash's own local QStash dev server credentials (shared/docs/qstash-protocol.md, section 1).
DEV_QSTASH_TOKEN = "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0="
DEV_CURRENT_SIGNING_KEY = "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r"
DEV_NEXT_SIGNING_KEY = "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs"
DEV_SECRETS = {DEV_QSTASH_TOKEN, DEV_CURRENT_SIGNING_KEY, DEV_NEXT_SIGNING_KEY}


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """All configuration, read from the environment (and `.env` when present)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    env: Environment = Environment.DEVELOPMENT
    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str = f"sqlite+aiosqlite:///{PROJECT_ROOT / 'var' / 'curaway.db'}"
    public_base_url: str = ""
    log_level: str = "INFO"

    # Transport. An empty QSTASH_URL means: use the embedded server at PUBLIC_BASE_URL/qstash.
    qstash_url: str = ""
    qstash_token: str = DEV_QSTASH_TOKEN
    qstash_current_signing_key: str = DEV_CURRENT_SIGNING_KEY
    qstash_next_signing_key: str = DEV_NEXT_SIGNING_KEY
    qstash_signature_leeway_s: float = Field(default=5.0, ge=0, le=60)

    # Embedded QStash server (app/devqstash).
    devqstash_enabled: bool | None = None  # None: on exactly when QSTASH_URL is empty
    devqstash_retry_scale: float = Field(default=1.0, gt=0)  # multiplies QStash's backoff
    devqstash_default_retries: int = Field(default=3, ge=0)
    devqstash_delivery_timeout_s: float = Field(default=900.0, gt=0)
    devqstash_poll_interval_s: float = Field(default=0.25, gt=0)
    devqstash_concurrency: int = Field(default=32, ge=1)

    # Workflow runtime.
    workflow_inline_budget_ms: int = Field(default=2000, ge=0)
    workflow_max_step_output_bytes: int = Field(default=65536, ge=64)
    workflow_step_timeout_s: float = Field(default=300.0, gt=0)
    workflow_default_retries: int = Field(default=3, ge=0)
    workflow_retry_base_delay_s: float = Field(default=2.0, ge=0)
    workflow_retry_max_delay_s: float = Field(default=3600.0, ge=0)
    workflow_lease_ttl_s: float = Field(default=30.0, gt=0)
    workflow_lease_wait_s: float = Field(default=2.0, ge=0)
    workflow_message_retries: int = Field(default=3, ge=0)

    @model_validator(mode="after")
    def _refuse_dev_secrets_outside_development(self) -> Settings:
        if self.env is Environment.DEVELOPMENT:
            return self
        used = [
            name
            for name in ("qstash_token", "qstash_current_signing_key", "qstash_next_signing_key")
            if getattr(self, name) in DEV_SECRETS
        ]
        if used:
            names = ", ".join(n.upper() for n in used)
            raise ValueError(
                f"{names} hold the public development credentials of Upstash's local QStash "
                f"server, which are refused when ENV={self.env.value}; set real values."
            )
        return self

    @cached_property
    def base_url(self) -> str:
        """The public URL QStash delivers to (and signs as `sub`), without trailing slash."""
        return (self.public_base_url or f"http://{self.host}:{self.port}").rstrip("/")

    @cached_property
    def embedded_qstash(self) -> bool:
        if self.devqstash_enabled is None:
            return not self.qstash_url
        return self.devqstash_enabled

    @cached_property
    def qstash_base_url(self) -> str:
        return (self.qstash_url or f"{self.base_url}/qstash").rstrip("/")

    @property
    def signing_keys(self) -> tuple[str, str]:
        return (self.qstash_current_signing_key, self.qstash_next_signing_key)
