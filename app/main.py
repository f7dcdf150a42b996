"""The FastAPI application factory.

`create_app(settings, workflows=...)` wires the layers together: one engine, one HTTP client,
the QStash client, the runtime and, unless `QSTASH_URL` points elsewhere, the embedded QStash
server mounted at `/qstash`. Nothing is built at import time and nothing connects before the
lifespan starts; the lifespan starts the embedded server's delivery loop and closes
everything on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.tokens import TokenService
from app.cases.progress import ProgressFeed
from app.compute import run_cpu
from app.config import HTTP_KEEPALIVE_S, Environment, Settings
from app.db import create_engine, session_factory
from app.devqstash import DevQStash
from app.devqstash.router import build_router
from app.errors import HTTPFacingError
from app.logging import configure_logging, install_run_id_factory
from app.ops.deadletters import WebhookDeadLetters
from app.ops.state import OpsState, build_ops
from app.ops.usage import Quota
from app.runtime.config import RuntimeConfig
from app.runtime.cron import router as cron_router
from app.runtime.errors import UnknownWorkflowError
from app.runtime.registry import Workflow
from app.runtime.router import router as workflow_router
from app.runtime.runtime import Runtime, SignatureConfig
from app.runtime.schedules import Schedule
from app.security import install as install_security
from app.services import Services
from app.storage import ObjectStorage, build_storage
from app.workflows.deps import PipelineDeps, build_pipeline_deps

log = logging.getLogger(__name__)


def runtime_config(settings: Settings) -> RuntimeConfig:
    return RuntimeConfig(
        inline_budget_ms=settings.workflow_inline_budget_ms,
        max_step_output_bytes=settings.workflow_max_step_output_bytes,
        step_timeout_s=settings.workflow_step_timeout_s,
        default_retries=settings.workflow_default_retries,
        retry_base_delay_s=settings.workflow_retry_base_delay_s,
        retry_max_delay_s=settings.workflow_retry_max_delay_s,
        lease_ttl_s=settings.workflow_lease_ttl_s,
        lease_wait_s=settings.workflow_lease_wait_s,
        message_retries=settings.workflow_message_retries,
        notification_ttl_s=settings.workflow_notification_ttl_s,
        watchdog_interval_s=settings.workflow_watchdog_interval_s,
        watchdog_stuck_after_s=settings.workflow_watchdog_stuck_after_s,
    )


def build_storage_from(settings: Settings) -> ObjectStorage:
    return build_storage(
        settings.storage_backend,
        storage_dir=settings.storage_dir,
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_bucket=settings.s3_bucket,
        s3_access_key_id=settings.s3_access_key_id,
        s3_secret_access_key=settings.s3_secret_access_key.get_secret_value(),
        s3_region=settings.s3_region,
    )


def build_services(settings: Settings, workflows: Iterable[Workflow], deps: object | None = None) -> Services:
    """Everything the app needs; `deps` (what steps see as `ctx.deps`) defaults to the pipelines'."""
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    limits = httpx.Limits(keepalive_expiry=HTTP_KEEPALIVE_S)
    http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0), limits=limits)
    ops = build_ops_from(settings, sessions, http)
    qstash = ops.qstash  # the QStash client with the usage counter (app/ops/usage.py)
    storage = build_storage_from(settings)
    if deps is None:
        on_llm_call = ops.tracer.generation if ops.tracer is not None else None
        deps = build_pipeline_deps(settings, sessions, http, storage, on_llm_call=on_llm_call)
    runtime = Runtime(
        sessions=sessions,
        transport=qstash,
        workflows=workflows,
        base_url=settings.base_url,
        config=runtime_config(settings),
        signatures=SignatureConfig(settings.signing_keys, settings.qstash_signature_leeway_s),
        deps=deps,
        hooks=ops.hooks,
    )
    ops.dead_letters.add(WebhookDeadLetters(sessions, runtime))  # replays start webhook-delivery runs
    devqstash = None
    if settings.embedded_qstash:
        devqstash = DevQStash(
            sessions=sessions,
            token=settings.qstash_token.get_secret_value(),
            signing_keys=settings.signing_keys,
            retry_scale=settings.devqstash_retry_scale,
            default_retries=settings.devqstash_default_retries,
            delivery_timeout_s=settings.devqstash_delivery_timeout_s,
            poll_interval_s=settings.devqstash_poll_interval_s,
            concurrency=settings.devqstash_concurrency,
        )
    tokens = TokenService(
        secret=settings.auth_secret.get_secret_value(),
        ops_token=settings.ops_token.get_secret_value(),
        ttl_s=settings.patient_token_ttl_s,
    )
    # Postgres makes rows visible at commit, not in ID order: the feed waits at a young gap in the
    # IDs for a straggler, and LISTENs for other processes' commits (migration 0011).
    postgres = engine.dialect.name == "postgresql"
    progress = ProgressFeed(
        sessions,
        poll_s=settings.progress_poll_s,
        settle_s=0.5 if postgres else 0.0,
        listen_dsn=engine.url.set(drivername="postgresql").render_as_string(hide_password=False) if postgres else None,
    )
    return Services(settings, engine, sessions, http, qstash, runtime, devqstash, tokens, storage, progress, ops)


def build_ops_from(settings: Settings, sessions: async_sessionmaker[AsyncSession], http: httpx.AsyncClient) -> OpsState:
    quota = Quota(
        daily=settings.ops_qstash_daily_quota,
        price_per_100k=settings.ops_qstash_price_per_100k,
        warn_ratio=settings.ops_qstash_quota_warn_ratio,
    )
    keys = (settings.langfuse_public_key, settings.langfuse_secret_key.get_secret_value())
    langfuse = (settings.langfuse_host, *keys) if all(keys) else None
    return build_ops(
        sessions,
        http,
        qstash_url=settings.qstash_base_url,
        qstash_token=settings.qstash_token.get_secret_value(),
        quota=quota,
        flush_s=settings.ops_usage_flush_s,
        alerts_poll_s=settings.ops_alerts_poll_s,
        alerts_dlq_poll_s=settings.ops_alerts_dlq_poll_s,
        alert_webhook_url=settings.ops_alert_webhook_url,
        alert_webhook_secret=settings.ops_alert_webhook_secret.get_secret_value(),
        langfuse=langfuse,
        llm_prices=(settings.llm_price_input_per_1m, settings.llm_price_output_per_1m),
    )


def create_app(
    settings: Settings | None = None,
    *,
    workflows: Iterable[Workflow] | None = None,
    deps: object | None = None,
    schedules: Iterable[Schedule] | None = None,
) -> FastAPI:
    settings = settings or Settings()
    if schedules is None:
        from app.workflows.schedules import SCHEDULES

        schedules = SCHEDULES
    install_run_id_factory()
    if workflows is None:
        from app.workflows import default_workflows

        workflows = default_workflows()
    services = build_services(settings, workflows, deps)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if services.devqstash is not None:
            await services.devqstash.start()
        await services.progress.start()
        if services.ops is not None:
            await services.ops.start()
        background = _warm_up_embeddings(services)
        services.runtime.serve()  # runs started or woken here are driven here at once
        watchdog = None
        if settings.workflow_watchdog_interval_s > 0:
            watchdog = asyncio.create_task(services.runtime.watchdog(), name="workflow-watchdog")
        log.info("serving on %s (QStash at %s)", settings.base_url, settings.qstash_base_url)
        try:
            yield
        finally:
            for task in (watchdog, background):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await services.runtime.close()
            await services.progress.stop()
            if services.devqstash is not None:
                await services.devqstash.aclose()
            await services.runtime.outbox.close()
            if services.ops is not None:
                await services.ops.stop()
            await services.storage.aclose()
            await services.http.aclose()
            await services.engine.dispose()

    app = FastAPI(title="Curaway pipelines", version="0.1.0", lifespan=lifespan)
    app.state.services = services
    app.state.settings = settings
    app.state.runtime = services.runtime
    app.state.devqstash = services.devqstash
    app.state.schedules = list(schedules)
    _install_error_handlers(app)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """200 while the process serves requests."""
        return {"status": "ok"}

    app.include_router(workflow_router)
    app.include_router(cron_router)
    for router in domain_routers(settings):
        app.include_router(router)
    if services.devqstash is not None:
        app.include_router(build_router(services.devqstash), prefix="/qstash", include_in_schema=False)
    install_security(app, settings)
    return app


def _warm_up_embeddings(services: Services) -> asyncio.Task[None] | None:
    """Read the ICD-10-CM tabular list and embed the catalog's requirement terms in the background,
    so the first document's coding and match are fast."""
    deps = services.runtime.deps
    if not isinstance(deps, PipelineDeps) or not services.settings.embedding_warm_up:
        return None
    embedder = deps.embedder
    from app.extraction.icd10 import load_tabular_list
    from app.matching.matcher import warm_up

    async def run() -> None:
        try:
            await run_cpu(load_tabular_list)
            await warm_up(embedder)
        except Exception:  # the first match will try again, lazily
            log.exception("embedding warm-up failed")

    return asyncio.create_task(run(), name="embedding-warm-up")


def domain_routers(settings: Settings) -> list[APIRouter]:
    from app.auth.router import router as auth_router
    from app.cases.router import router as cases_router
    from app.consents.router import router as consents_router
    from app.documents.router import router as documents_router
    from app.forwardings.router import router as forwardings_router
    from app.ops.console import router as ops_console_router
    from app.ops.health import router as health_router
    from app.ops.router import router as ops_router
    from app.patients.router import router as patients_router
    from app.procedures.router import router as procedures_router
    from app.providers.router import router as providers_router

    routers = [patients_router, cases_router, procedures_router, documents_router]
    routers += [providers_router, consents_router, forwardings_router]
    routers += [ops_router, ops_console_router, health_router]
    if settings.env is Environment.DEVELOPMENT:
        routers.append(auth_router)
    from app.analytics.router import router as analytics_router
    from app.rates.router import dev_router as dev_rates_router
    from app.rates.router import router as rates_router

    routers += [rates_router, analytics_router]
    if settings.env is Environment.DEVELOPMENT:
        routers.append(dev_rates_router)
    return routers


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPFacingError)
    async def _http_facing(_: Request, exc: HTTPFacingError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.exception_handler(UnknownWorkflowError)
    async def _unknown_workflow(_: Request, exc: UnknownWorkflowError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=404)


def app_factory() -> FastAPI:
    """Entry point for `uvicorn --factory app.main:app_factory` and `curaway serve`."""
    settings = Settings()
    configure_logging(settings.log_level, settings.effective_log_format)
    return create_app(settings)
