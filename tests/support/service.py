"""Run the real service (app, runtime, embedded QStash) over real HTTP for a test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from app.config import Settings
from app.devqstash.models import ACTIVE_STATES, QStashMessage
from app.main import build_services, create_app
from app.runtime.models import TERMINAL_RUN_STATUSES, Event, WorkflowOutbox, WorkflowRun, WorkflowStep
from app.runtime.registry import Workflow
from app.runtime.runtime import Runtime
from app.runtime.schedules import Schedule
from app.services import Services
from tests.support.live import serve

FAST_SETTINGS: dict[str, Any] = {
    "env": "development",
    "devqstash_retry_scale": 0.01,
    "devqstash_poll_interval_s": 0.05,
    "workflow_retry_base_delay_s": 0.1,
}


def service_settings(database_url: str, base_url: str, **overrides: Any) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        public_base_url=base_url,
        **{**FAST_SETTINGS, **overrides},
    )


@dataclass
class LiveService:
    base_url: str
    services: Services
    database_url: str

    @property
    def runtime(self) -> Runtime:
        return self.services.runtime

    async def run(self, run_id: str) -> WorkflowRun:
        async with self.services.sessions() as session:
            run = await session.get(WorkflowRun, run_id)
            assert run is not None, f"no run {run_id}"
            return run

    async def wait(
        self, run_id: str, *, statuses: Iterable[str] = TERMINAL_RUN_STATUSES, timeout: float = 30
    ) -> WorkflowRun:
        wanted = set(statuses)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            run = await self.run(run_id)
            if run.status in wanted:
                return run
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"run {run_id} is {run.status!r} after {timeout}s, wanted {sorted(wanted)}")
            await asyncio.sleep(0.05)

    async def settled(self, *run_ids: str, timeout: float = 30) -> None:
        """Wait until neither the embedded QStash nor the outbox holds a wake-up left for these runs.

        After that, nothing can bring the runs back: what a test sees then is final.
        """
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            async with self.services.sessions() as session:
                bodies = await session.scalars(select(QStashMessage.body).where(QStashMessage.state.in_(ACTIVE_STATES)))
                pending = [b for b in bodies if any(run_id.encode() in b for run_id in run_ids)]
                rows = await session.scalars(select(WorkflowOutbox.id).where(WorkflowOutbox.run_id.in_(run_ids)))
                pending += list(rows)
            if not pending:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{len(pending)} wake-up(s) for {run_ids} still pending after {timeout}s")
            await asyncio.sleep(0.05)

    async def events(self, run_id: str) -> list[Event]:
        async with self.services.sessions() as session:
            rows = await session.scalars(select(Event).where(Event.workflow_id == run_id).order_by(Event.id))
            return list(rows)

    async def steps(self, run_id: str) -> list[WorkflowStep]:
        async with self.services.sessions() as session:
            rows = await session.scalars(
                select(WorkflowStep).where(WorkflowStep.run_id == run_id).order_by(WorkflowStep.position)
            )
            return list(rows)


@asynccontextmanager
async def live_service(
    database_url: str,
    workflows: list[Workflow] | None,
    *,
    deps: Any = None,
    wrap: Callable[[Any], Any] | None = None,
    schedules: list[Schedule] | None = None,
    **overrides: Any,
) -> AsyncIterator[LiveService]:
    """Serve the app with `workflows` (and declared `schedules`) on a free port; `wrap` may wrap the ASGI app."""
    holder: dict[str, Any] = {}

    def build(base_url: str) -> Any:
        settings = service_settings(database_url, base_url, **overrides)
        app = create_app(settings, workflows=workflows, deps=deps, schedules=schedules)
        holder["app"] = app
        return wrap(app) if wrap else app

    async with serve(build) as (base_url, _):
        yield LiveService(base_url, holder["app"].state.services, database_url)


@asynccontextmanager
async def non_serving(
    svc: LiveService, workflows: list[Workflow] | None, *, deps: Any = None
) -> AsyncIterator[Services]:
    """Another process's handle on `svc` (the CLI's, a script's): it builds the services, never serves.

    A run it triggers is published to QStash and driven by a delivery, as the eager drive of a
    serving process would not let it be.
    """
    other = build_services(service_settings(svc.database_url, svc.base_url), workflows, deps=deps)
    try:
        yield other
    finally:
        await other.http.aclose()
        await other.engine.dispose()
