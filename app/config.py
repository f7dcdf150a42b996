"""Settings: the one reader of the environment.

Every other module receives a `Settings` instance (or values taken from it) through a
constructor or a FastAPI dependency. Outside `ENV=development` the public development
credentials (Upstash's local QStash token and keys, the dev ops token and auth secret) are
refused, so a production deployment can never run with secrets printed in documentation;
`unsafe_settings` adds what else is refused (short secrets; SQLite, the embedded QStash, local
storage, a PUBLIC_BASE_URL that is not https: with ENV=production always, with ENV=test unless the
service is machine-local, see `machine_local`). Secrets are `SecretStr`:
read them with `.get_secret_value()` where they are used, never log the settings' values.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _default_data_dir() -> Path:
    """`var/` in a source checkout (make run), else `var/` under the working directory.

    A non-editable install puts `app/` in site-packages: its parent is no place for data.
    """
    if (PROJECT_ROOT / "pyproject.toml").is_file():
        return PROJECT_ROOT / "var"
    return Path.cwd() / "var"


DATA_DIR = _default_data_dir()

# Upstash's own local QStash dev server credentials (shared/docs/qstash-protocol.md, section 1).
DEV_QSTASH_TOKEN = "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0="
DEV_CURRENT_SIGNING_KEY = "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r"
DEV_NEXT_SIGNING_KEY = "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs"
DEV_OPS_TOKEN = "dev-ops-token"
DEV_AUTH_SECRET = "dev-auth-secret-change-me-0123456789abcdef"
OCR_ENGINES = ("tesseract", "rapidocr")
# Our HTTP clients' limits: an idle pooled connection is dropped after HTTP_KEEPALIVE_S, well
# before servers close theirs (uvicorn and Node after 5 s idle, httpx's own default too). With
# equal timeouts a request sent as the server closes the connection fails with `ReadError`
# (3 of 40 requests sent at the 1 s boundary, measured against uvicorn); QStash deliveries then
# waited out a retry's backoff.
HTTP_KEEPALIVE_S = 2.0
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
    database_url: str = f"sqlite+aiosqlite:///{DATA_DIR / 'curaway.db'}"
    public_base_url: str = ""
    log_level: str = "INFO"

    # Transport. An empty QSTASH_URL means: use the embedded server at PUBLIC_BASE_URL/qstash.
    qstash_url: str = ""
    qstash_token: SecretStr = SecretStr(DEV_QSTASH_TOKEN)
    qstash_current_signing_key: SecretStr = SecretStr(DEV_CURRENT_SIGNING_KEY)
    qstash_next_signing_key: SecretStr = SecretStr(DEV_NEXT_SIGNING_KEY)
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
    ops_token: SecretStr = SecretStr(DEV_OPS_TOKEN)
    auth_secret: SecretStr = SecretStr(DEV_AUTH_SECRET)
    patient_token_ttl_s: int = Field(default=7 * 24 * 3600, gt=0)

    # Document storage: local files (default) or an S3-compatible bucket (Cloudflare R2).
    storage_backend: Literal["local", "s3"] = "local"
    storage_dir: Path = DATA_DIR / "storage"
    s3_endpoint_url: str = ""
    s3_bucket: str = ""
    s3_access_key_id: str = ""
    s3_secret_access_key: SecretStr = SecretStr("")
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
    llm_api_key: SecretStr = SecretStr("")
    llm_model: str = ""
    llm_timeout_s: float = Field(default=60.0, gt=0)
    llm_max_retries: int = Field(default=2, ge=0)

    # Requirement matching embeddings: a local model from an installed package, or a hosted API.
    embedding_backend: Literal["local", "api"] = "local"
    embedding_api_url: str = ""
    embedding_api_key: SecretStr = SecretStr("")
    embedding_model: str = ""
    match_threshold: float = Field(default=0.5, ge=0, le=1)
    embedding_warm_up: bool = True  # embed the catalog's terms at startup, in the background

    # Live progress (SSE): how often the feed polls the events table; keep-alive ping interval.
    progress_poll_s: float = Field(default=0.25, gt=0)
    sse_ping_s: float = Field(default=15.0, gt=0)

    # Production hardening (app/http/). Migrations: empty = the `migrations/` of a source checkout.
    migrations_dir: Path | None = None
    # Bodies larger than this are answered 413 before they are read (uploads: MAX_UPLOAD_BYTES).
    max_request_bytes: int = Field(default=1024 * 1024, gt=0)
    # Browser origins allowed by CORS, comma-separated ("" = none: CORS closed; "*" = any, no credentials).
    cors_allow_origins: str = ""
    # Rate limits: "[METHOD ]PATH_PATTERN=COUNT/SECONDS" rules, comma-separated; `*` matches one path
    # segment and a pattern matches as a prefix. Each rule counts per bearer token and per client IP.
    # On SIGTERM, in-flight requests (QStash deliveries) get this long to finish; one still running
    # then is cancelled: it gives its run's lease back and goes unanswered, so QStash delivers it again.
    shutdown_grace_s: float = Field(default=8.0, ge=0)
    rate_limits: str = (
        "POST /auth/=20/60,POST /cases/*/documents=30/60,POST /cases/*/forwardings=30/60,POST /providers=30/60,"
        "POST /ops/console/login=20/60"
    )
    # Scheduled jobs (app/workflows/scheduled_jobs, docs/scheduled-jobs.md).
    cleanup_retention_days: float = Field(default=30.0, gt=0)  # stale intake sessions older than this go
    cleanup_batch_size: int = Field(default=100, ge=1, le=1000)  # rows per cleanup step
    reminder_after_hours: float = Field(default=24.0, gt=0)  # a case without documents this long is reminded
    reminder_lookback_days: float = Field(default=7.0, gt=0)  # ... if opened within this many days before that
    consent_warning_days: float = Field(default=7.0, gt=0)  # a consent expiring this soon gets one warning
    rates_url: str = ""  # the rates source; empty: this app's /dev/rates in development
    rates_base: str = "USD"
    rates_currencies: str = "EUR,GBP,INR,TRY,THB,AED"  # the currencies the platform quotes in
    notify_sender: Literal["none", "http"] = "none"  # http: POST digests to NOTIFY_HTTP_URL (mail/SMS gateway)
    notify_http_url: str = ""
    notify_http_token: SecretStr = SecretStr("")
    # Provider webhooks (app/providers, webhook-delivery). Timeouts and retries of one delivery:
    # attempt n waits min(max, initial * factor^(n-1)) +-jitter before attempt n+1 (or Retry-After).
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_max_attempts: int = Field(default=8, ge=1)
    webhook_backoff_initial_s: float = Field(default=5.0, ge=0)
    webhook_backoff_factor: float = Field(default=2.0, ge=1)
    webhook_backoff_max_s: float = Field(default=3600.0, ge=0)
    webhook_backoff_jitter: float = Field(default=0.2, ge=0, le=1)  # +- this fraction
    webhook_response_excerpt_chars: int = Field(default=500, ge=0)
    # After a rotation the old secret still signs (beside the new one) this long.
    webhook_secret_grace_s: float = Field(default=86400.0, ge=0)
    # Plain http and private/loopback/link-local webhook URLs: development and tests only.
    webhook_allow_private_urls: bool = False
    # Circuit breaker per provider: this many consecutive failed attempts open it; after the
    # cool-down one probe is sent, and its success closes the circuit.
    circuit_failure_threshold: int = Field(default=5, ge=1)
    circuit_cooldown_s: float = Field(default=60.0, gt=0)
    # Acknowledgements (providers with ack_required): wait this long, then escalate.
    webhook_ack_timeout_s: float = Field(default=86400.0, gt=0)

    @model_validator(mode="after")
    def _private_webhook_urls_only_in_development(self) -> Settings:
        if self.webhook_allow_private_urls and not _local_stand_ins_allowed(self):
            raise ValueError(
                "WEBHOOK_ALLOW_PRIVATE_URLS lets webhooks reach plain http and private addresses; "
                "it is refused when ENV=production, and when ENV=test on a service that is not machine-local"
            )
        return self

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
    ops_alert_webhook_secret: SecretStr = SecretStr("")
    # Langfuse tracing (app/ops/tracing.py): on only when both keys are set.
    langfuse_host: str = "https://cloud.langfuse.com"
    langfuse_public_key: str = ""
    langfuse_secret_key: SecretStr = SecretStr("")
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
    def _sender_needs_a_url(self) -> Settings:
        if self.notify_sender == "http" and not self.notify_http_url:
            raise ValueError("NOTIFY_SENDER=http needs NOTIFY_HTTP_URL (the mail/SMS gateway to post digests to)")
        return self

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
            if getattr(self, name).get_secret_value() in DEV_SECRETS
        ]
        if used:
            names = ", ".join(n.upper() for n in used)
            raise ValueError(
                f"{names} hold public development credentials (printed in the docs), which are "
                f"refused when ENV={self.env.value}; set real secrets."
            )
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_settings_outside_development(self) -> Settings:
        problems = unsafe_settings(self)
        if problems:
            listed = "\n".join(f"- {problem}" for problem in problems)
            raise ValueError(f"refused when ENV={self.env.value}:\n{listed}")
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
    def rates_source_url(self) -> str:
        """RATES_URL, or in development the app's own offline rates endpoint ("" otherwise)."""
        if self.rates_url:
            return self.rates_url
        return f"{self.base_url}/dev/rates?base={self.rates_base}" if self.env is Environment.DEVELOPMENT else ""

    @property
    def rates_currency_codes(self) -> tuple[str, ...]:
        return tuple(code.strip().upper() for code in self.rates_currencies.split(",") if code.strip())

    @property
    def signing_keys(self) -> tuple[str, str]:
        return (self.qstash_current_signing_key.get_secret_value(), self.qstash_next_signing_key.get_secret_value())


MIN_AUTH_SECRET_BYTES = 32
MIN_OPS_TOKEN_CHARS = 16


def machine_local(settings: Settings) -> bool:
    """Whether nobody outside this machine can reach the service: HOST is a loopback address and
    PUBLIC_BASE_URL is unset (then it is http://HOST:PORT) or a URL on a loopback host."""
    if not _loopback(settings.host):
        return False
    return not settings.public_base_url or _loopback(urlsplit(settings.public_base_url).hostname or "")


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _local_stand_ins_allowed(settings: Settings) -> bool:
    """Development always; ENV=test only on a machine-local service; production never."""
    if settings.env is Environment.DEVELOPMENT:
        return True
    return settings.env is Environment.TEST and machine_local(settings)


def unsafe_settings(settings: Settings) -> list[str]:
    """What makes these settings unfit outside development, one sentence per setting (named first).

    Outside development (`test` and `production`) a short AUTH_SECRET or OPS_TOKEN and empty
    QStash credentials are refused. The local stand-ins (SQLite, the embedded QStash, local file
    storage, and a PUBLIC_BASE_URL that is missing or not https) are refused with `production`,
    and with `test` unless the service is `machine_local` (HOST a loopback address, PUBLIC_BASE_URL
    unset or on a loopback host): the suite and the image test run production code paths on one
    machine that way, while a deployment with ENV=test, which others can reach, cannot run on
    SQLite or local disk. The public development credentials are refused by
    `_refuse_dev_secrets_outside_development`.
    """
    if settings.env is Environment.DEVELOPMENT:
        return []
    problems = []
    if len(settings.auth_secret.get_secret_value().encode()) < MIN_AUTH_SECRET_BYTES:
        problems.append(f"AUTH_SECRET is shorter than {MIN_AUTH_SECRET_BYTES} bytes: set a long random secret")
    if len(settings.ops_token.get_secret_value()) < MIN_OPS_TOKEN_CHARS:
        problems.append(f"OPS_TOKEN is shorter than {MIN_OPS_TOKEN_CHARS} characters: set a long random token")
    for name in ("qstash_token", "qstash_current_signing_key", "qstash_next_signing_key"):
        if not getattr(settings, name).get_secret_value():
            problems.append(f"{name.upper()} is empty: copy it from the Upstash console")
    if _local_stand_ins_allowed(settings):
        return problems
    stand_ins = _stand_ins(settings)
    if stand_ins and settings.env is Environment.TEST:
        stand_ins.append(
            f"HOST={settings.host} and PUBLIC_BASE_URL={settings.public_base_url or '(unset)'} make the service "
            "reachable beyond this machine: ENV=test keeps the local stand-ins above only with HOST a loopback "
            "address and PUBLIC_BASE_URL unset or http://127.0.0.1:PORT (or localhost)"
        )
    return problems + stand_ins


def _stand_ins(settings: Settings) -> list[str]:
    """The development stand-ins in use, each named: fine on one machine, refused where others reach it."""
    problems = []
    if settings.database_url.startswith("sqlite"):
        problems.append("DATABASE_URL is SQLite: use Postgres (postgresql://user:password@host/db)")
    if not settings.public_base_url.startswith("https://"):
        problems.append("PUBLIC_BASE_URL must be the service's public https:// URL (QStash delivers to it)")
    if not settings.qstash_url:
        problems.append("QSTASH_URL is unset, which means the embedded QStash: set https://qstash.upstash.io")
    elif settings.devqstash_enabled:
        problems.append("DEVQSTASH_ENABLED=true serves the embedded QStash: unset it")
    if settings.storage_backend == "local":
        problems.append("STORAGE_BACKEND=local keeps documents on the container's disk: use s3 (Cloudflare R2)")
    return problems


def settings_error_text(exc: Exception) -> str:
    """A settings ValidationError as lines naming each setting (no values, no traceback)."""
    errors = getattr(exc, "errors", None)
    if errors is None:
        return str(exc)
    lines = []
    for error in errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in error.get("loc", ()))
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        lines.append(f"{field.upper()}: {message}" if field else message)
    return "\n".join(lines)
