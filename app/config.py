"""Settings: the one reader of the environment.

Every other module receives a `Settings` instance (or values taken from it) through a
constructor or a FastAPI dependency. Outside `ENV=development` the public development
credentials (Upstash's local QStash token and keys, the dev ops token and auth secret) are
refused, so a production deployment can never run with secrets printed in documentation.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Upstash's own local QStash dev server credentials (shared/docs/qstash-protocol.md, section 1).
DEV_QSTASH_TOKEN = "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0="
DEV_CURRENT_SIGNING_KEY = "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r"
DEV_NEXT_SIGNING_KEY = "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs"
DEV_OPS_TOKEN = "dev-ops-token"
DEV_AUTH_SECRET = "dev-auth-secret-change-me-0123456789abcdef"
OCR_ENGINES = ("tesseract", "rapidocr")
DEV_SECRETS = {DEV_QSTASH_TOKEN, DEV_CURRENT_SIGNING_KEY, DEV_NEXT_SIGNING_KEY, DEV_OPS_TOKEN, DEV_AUTH_SECRET}


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
    workflow_lease_ttl_s: float = Field(default=20.0, gt=0)
    workflow_lease_wait_s: float = Field(default=2.0, ge=0)
    workflow_message_retries: int = Field(default=3, ge=0)
    workflow_notification_ttl_s: float = Field(default=86400.0, gt=0)  # notify before wait
    workflow_watchdog_interval_s: float = Field(default=5.0, ge=0)  # 0 turns the watchdog off
    workflow_watchdog_stuck_after_s: float = Field(default=30.0, gt=0)

    # Access control (DESIGN 5). Patient tokens are JWTs signed with AUTH_SECRET.
    ops_token: str = DEV_OPS_TOKEN
    auth_secret: str = DEV_AUTH_SECRET
    patient_token_ttl_s: int = Field(default=7 * 24 * 3600, gt=0)

    # Document storage: local files (default) or an S3-compatible bucket (Cloudflare R2).
    storage_backend: Literal["local", "s3"] = "local"
    storage_dir: Path = PROJECT_ROOT / "var" / "storage"
    s3_endpoint_url: str = ""
    s3_bucket: str = ""
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    s3_region: str = "auto"
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, gt=0)

    # OCR: Tesseract language data for pages without a text layer (empty: find it, else needs_ocr).
    tessdata_prefix: str = ""
    ocr_language: str = "eng"
    ocr_enabled: bool = True  # false: never OCR; pages without a text layer end needs_ocr
    # OCR engines in order of preference, comma-separated: tesseract (needs its language data),
    # rapidocr (Python packages only). A page takes the first engine that reads it.
    ocr_engines: str = "tesseract,rapidocr"

    # Clinical Context Agent: the deterministic offline extractor, or an OpenAI-compatible LLM.
    extractor: Literal["offline", "llm"] = "offline"
    llm_base_url: str = ""
    llm_api_key: str = ""
    llm_model: str = ""
    llm_timeout_s: float = Field(default=60.0, gt=0)
    llm_max_retries: int = Field(default=2, ge=0)

    # Requirement matching embeddings: a local model from an installed package, or a hosted API.
    embedding_backend: Literal["local", "api"] = "local"
    embedding_api_url: str = ""
    embedding_api_key: str = ""
    embedding_model: str = ""
    match_threshold: float = Field(default=0.5, ge=0, le=1)
    embedding_warm_up: bool = True  # embed the catalog's terms at startup, in the background

    # Live progress (SSE): how often the feed polls the events table; keep-alive ping interval.
    progress_poll_s: float = Field(default=0.25, gt=0)
    sse_ping_s: float = Field(default=15.0, gt=0)

    # Ops (app/ops): QStash usage against the daily quota (Upstash free tier: 500 messages a day)
    # and its price; usage counts are added to the database every OPS_USAGE_FLUSH_S.
    ops_qstash_daily_quota: int = Field(default=500, ge=0)
    ops_qstash_price_per_100k: float = Field(default=1.0, ge=0)
    ops_qstash_quota_warn_ratio: float = Field(default=0.8, gt=0, le=1)
    ops_usage_flush_s: float = Field(default=2.0, gt=0)
    # Alerts (app/ops/alerts.py): how often events and dead letters are checked; an optional
    # ops webhook receiving each alert, signed like Standard Webhooks with the secret.
    ops_alerts_poll_s: float = Field(default=2.0, gt=0)
    ops_alerts_dlq_poll_s: float = Field(default=30.0, gt=0)
    ops_alert_webhook_url: str = ""
    ops_alert_webhook_secret: str = ""
    # Langfuse tracing (app/ops/tracing.py): on only when both keys are set.
    langfuse_host: str = "https://cloud.langfuse.com"
    langfuse_public_key: str = ""
    langfuse_secret_key: str = ""
    # The LLM's price per million input / output tokens, for the cost of Langfuse generations.
    llm_price_input_per_1m: float = Field(default=0.0, ge=0)
    llm_price_output_per_1m: float = Field(default=0.0, ge=0)
    # Log lines as JSON objects (json) or readable text; empty: text in development, else json.
    log_format: Literal["json", "text", ""] = ""

    @property
    def effective_log_format(self) -> str:
        return self.log_format or ("text" if self.env is Environment.DEVELOPMENT else "json")

    @model_validator(mode="after")
    def _known_ocr_engines(self) -> Settings:
        unknown = [name for name in self.ocr_engine_names if name not in OCR_ENGINES]
        if unknown:
            known = ", ".join(OCR_ENGINES)
            raise ValueError(f"OCR_ENGINES: unknown engine {unknown[0]!r}; use a comma-separated list of {known}")
        return self

    @property
    def ocr_engine_names(self) -> tuple[str, ...]:
        """`ocr_engines` as names, in order ("tesseract,rapidocr" -> ("tesseract", "rapidocr"))."""
        return tuple(name.strip().lower() for name in self.ocr_engines.split(",") if name.strip())

    @property
    def active_ocr_engines(self) -> tuple[str, ...]:
        """The engines `extract_pages` may use: none when `ocr_enabled` is false."""
        return self.ocr_engine_names if self.ocr_enabled else ()

    @model_validator(mode="after")
    def _refuse_dev_secrets_outside_development(self) -> Settings:
        if self.env is Environment.DEVELOPMENT:
            return self
        used = [
            name
            for name in (
                "qstash_token",
                "qstash_current_signing_key",
                "qstash_next_signing_key",
                "ops_token",
                "auth_secret",
            )
            if getattr(self, name) in DEV_SECRETS
        ]
        if used:
            names = ", ".join(n.upper() for n in used)
            raise ValueError(
                f"{names} hold public development credentials (printed in the docs), which are "
                f"refused when ENV={self.env.value}; set real secrets."
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
