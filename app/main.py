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
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import create_engine, session_factory
from app.devqstash import DevQStash
from app.errors import HTTPFacingError
from app.logging import configure_logging, install_run_id_factory
from app.runtime.executor import RuntimeConfig
from app.runtime.registry import Workflow
from app.runtime.router import router as workflow_router
from app.runtime.runtime import Runtime, SignatureConfig
from app.runtime.errors import UnknownWorkflowError
from app.runtime.transport import QStashClient

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Services:
    """Everything a request, a step or a CLI command may need, built once per app."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient
    qstash: QStashClient
    runtime: Runtime
    devqstash: DevQStash | None


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


def build_services(settings: Settings, workflows: Iterable[Workflow], deps: Any = None) -> Services:
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0))
    qstash = QStashClient(settings.qstash_base_url, settings.qstash_token, http)
    runtime = Runtime(
        sessions=sessions,
        transport=qstash,
        workflows=workflows,
        base_url=settings.base_url,
        config=runtime_config(settings),
        signatures=SignatureConfig(settings.signing_keys, settings.qstash_signature_leeway_s),
        deps=deps,
    )
    devqstash = None
    if settings.embedded_qstash:
        devqstash = DevQStash(
            sessions=sessions,
            http=http,
            token=settings.qstash_token,
            signing_keys=settings.signing_keys,
            retry_scale=settings.devqstash_retry_scale,
            default_retries=settings.devqstash_default_retries,
            delivery_timeout_s=settings.devqstash_delivery_timeout_s,
            poll_interval_s=settings.devqstash_poll_interval_s,
            concurrency=settings.devqstash_concurrency,
        )
    return Services(settings, engine, sessions, http, qstash, runtime, devqstash)


def create_app(
    settings: Settings | None = None, *, workflows: Iterable[Workflow] | None = None, deps: Any = None
) -> FastAPI:
    settings = settings or Settings()
    install_run_id_factory()
    if workflows is None:
        from app.workflows import WORKFLOWS

        workflows = WORKFLOWS
    services = build_services(settings, workflows, deps)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if services.devqstash is not None:
            await services.devqstash.start()
        watchdog = None
        if settings.workflow_watchdog_interval_s > 0:
            watchdog = asyncio.create_task(services.runtime.watchdog(), name="workflow-watchdog")
        log.info("serving on %s (QStash at %s)", settings.base_url, settings.qstash_base_url)
        try:
            yield
        finally:
            if watchdog is not None:
                watchdog.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watchdog
            if services.devqstash is not None:
                await services.devqstash.stop()
            await services.http.aclose()
            await services.engine.dispose()

    app = FastAPI(title="Curaway pipelines", version="0.1.0", lifespan=lifespan)
    app.state.services = services
    app.state.settings = settings
    app.state.runtime = services.runtime
    app.state.devqstash = services.devqstash
    _install_error_handlers(app)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """200 while the process serves requests."""
        return {"status": "ok"}

    app.include_router(workflow_router)
    if services.devqstash is not None:
        app.include_router(services.devqstash.router, prefix="/qstash", include_in_schema=False)
    return app


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
    configure_logging(settings.log_level)
    return create_app(settings)
