"""`Runtime`: starts runs, takes QStash deliveries, and publishes what brings runs back.

A delivery is handled in three moves: take the run's lease, drive the run
(`executor.Driver`), give the lease back. A delivery that finds the lease held rings the
holder's doorbell and is acknowledged: the holder drives the run once more before it gives the
lease back, so nothing a concurrent delivery carries is dropped, and nothing runs twice. A
delivery stopped by the database or QStash is answered 503 and delivered again.

In a process that serves deliveries (`serve()`), a run that this process starts or wakes is
driven here at once (*eager*, `eager.py`), exactly like a delivery, and no message is published
for it: its outbox row, committed with the change that woke it, is the durable safety net.

Messages carry only `{"run_id", "position"}`; every publish has a deduplication ID derived
from the run, the position and the reason, so re-publishing after a crash is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import secrets
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import utcnow
from app.errors import BadRequest, Conflict, NotFound
from app.logging import run_labels_var, workflow_id_var
from app.runtime import signing
from app.runtime.answers import DONE, IGNORED, QUEUED, RETRY, Answer, Outcome
from app.runtime.calls import call_body, call_outcome
from app.runtime.config import RuntimeConfig
from app.runtime.context import CallSpec
from app.runtime.coordination import Lease, Ring
from app.runtime.eager import EagerDrives
from app.runtime.encoding import check_size
from app.runtime.errors import LeaseLostError, RunCancelledError, WorkflowError
from app.runtime.executor import Driver
from app.runtime.hooks import RuntimeHooks
from app.runtime.ids import new_run_id
from app.runtime.models import RunStatus, WorkflowRun, WorkflowStep
from app.runtime.outbox import Outbox, RunRef, Wake, deduplication_id
from app.runtime.records import Clock
from app.runtime.registry import Workflow, WorkflowRegistry
from app.runtime.store import RunStore
from app.runtime.transport import Message, QStashClient

log = logging.getLogger(__name__)

# QStash's own retries of our messages cover crashed deliveries and infrastructure errors only.
MESSAGE_RETRY_DELAY = "min(30000, 1000 * pow(2, retried))"
# An outbox row older than this was not sent right after its commit: the watchdog re-sends it.
OUTBOX_SWEEP_AFTER = timedelta(seconds=10)


class DeliveryRequest(BaseModel):
    run_id: str
    position: int = 0


@dataclass(frozen=True, slots=True)
class SignatureConfig:
    keys: tuple[str, ...]
    leeway_s: float


class Runtime:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        transport: QStashClient,
        workflows: Iterable[Workflow],
        base_url: str,
        config: RuntimeConfig,
        signatures: SignatureConfig,
        deps: Any = None,
        clock: Clock = utcnow,
        hooks: RuntimeHooks | None = None,
    ) -> None:
        self.hooks = hooks or RuntimeHooks()  # observers (metrics, usage): hooks.py
        self.store = RunStore(sessions, clock=clock, lease_ttl_s=config.lease_ttl_s)
        self.outbox = Outbox(sessions, self.publish_ref)
        self.registry = WorkflowRegistry(workflows)
        self.transport = transport
        self.base_url = base_url.rstrip("/")
        self.config = config
        self.signatures = signatures
        self.deps = deps
        self.clock = clock
        self.instance = secrets.token_hex(4)
        self.eager = EagerDrives(self.drive, self.publish_ref, self.outbox)

    def workflow_url(self, name: str) -> str:
        return f"{self.base_url}/workflows/{name}"

    def verify(self, signature: str | None, body: bytes, url: str) -> None:
        """Raise `signing.SignatureError` unless QStash signed `body` for `url`."""
        signing.verify(signature, body, url, self.signatures.keys, leeway_s=self.signatures.leeway_s)

    # -- starting runs --------------------------------------------------------------------

    async def trigger(
        self,
        workflow: str | Workflow,
        payload: Any,
        *,
        run_id: str | None = None,
        labels: Mapping[str, str | None] | None = None,
    ) -> str:
        """Start a run and return its ID; the same `run_id` twice starts it once.

        `labels` are the run's correlation keys (`{"case_id": ...}`; None values are left out):
        kept on the run, indexed to find runs by them, inherited by child runs, and copied onto
        the run's event rows where the events table has a column of that name.
        """
        wf, payload = self._checked(workflow, payload)
        run_id = run_id or new_run_id()
        kept = _kept_labels(labels)
        run, start = await self.store.create_run(run_id, wf.name, payload, labels=kept)
        if run.workflow != wf.name:
            raise Conflict(f"run {run_id} already exists for workflow {run.workflow!r}")
        if start is not None:
            await self.flush([start])
            log.info("started %s run %s", wf.name, run_id)
        elif run.status == RunStatus.PENDING:
            await self.publish_continue(run, 0, "start", None)
        return run_id

    async def start_in(
        self,
        session: AsyncSession,
        workflow: str | Workflow,
        payload: Any,
        *,
        run_id: str,
        labels: Mapping[str, str | None] | None = None,
    ) -> Wake:
        """Write a run's start into the caller's transaction: the run exists exactly if the caller's change does.

        Adds the run, its labels, its `workflow.started` event and its start (an outbox row) to
        `session`, without committing. After its commit the caller sends the start with
        `flush([wake])`; if it cannot (a crash, QStash refusing), the watchdog's sweep sends it.
        Unlike `trigger`, a `run_id` that exists already fails the caller's transaction.
        """
        wf, payload = self._checked(workflow, payload)
        return await self.store.add_run(session, run_id, wf.name, payload, labels=_kept_labels(labels))

    def _checked(self, workflow: str | Workflow, payload: Any) -> tuple[Workflow, Any]:
        """The registered workflow and the payload as JSON, checked against its input model."""
        wf = self.registry.get(workflow if isinstance(workflow, str) else workflow.name)
        if isinstance(payload, BaseModel):
            payload = payload.model_dump(mode="json")
        try:
            wf.parse_payload(payload)
        except ValidationError as exc:
            raise BadRequest(f"invalid payload for workflow {wf.name!r}: {exc}") from exc
        return wf, payload

    # -- publishing (the executor's Publisher) ------------------------------------------

    async def publish_continue(self, run: WorkflowRun, position: int, key: str, not_before: datetime | None) -> None:
        message = Message(
            destination=self.workflow_url(run.workflow),
            body=json.dumps({"run_id": run.id, "position": position}),
            deduplication_id=deduplication_id(run.id, position, key, run.resumes),
            not_before=None if not_before is None else math.ceil(not_before.timestamp()),
            retries=self.config.message_retries,
            retry_delay=MESSAGE_RETRY_DELAY,
        )
        await self.transport.publish(message)

    async def publish_call(self, run: WorkflowRun, position: int, spec: CallSpec) -> str:
        callback = f"{self.workflow_url(run.workflow)}/call-result?run_id={run.id}&position={position}"
        retries = str(self.config.message_retries)
        message = Message(
            destination=spec.url,
            body=call_body(spec.body),
            method=spec.method,
            content_type="application/json" if isinstance(spec.body, dict | list) else None,
            forward_headers=spec.headers,
            retries=spec.retries,
            timeout_s=None if spec.timeout is None else math.ceil(spec.timeout),
            callback=callback,
            failure_callback=callback,
            deduplication_id=deduplication_id(run.id, position, "call", run.resumes),
            extra_headers={
                "Upstash-Callback-Retries": retries,
                "Upstash-Callback-Retry-Delay": MESSAGE_RETRY_DELAY,
                "Upstash-Failure-Callback-Retries": retries,
                "Upstash-Failure-Callback-Retry-Delay": MESSAGE_RETRY_DELAY,
            },
        )
        return (await self.transport.publish(message)).message_id

    async def publish_ref(self, ref: RunRef, key: str) -> None:
        message = Message(
            destination=self.workflow_url(ref.workflow),
            body=json.dumps({"run_id": ref.run_id, "position": ref.position}),
            deduplication_id=deduplication_id(ref.run_id, ref.position, key),  # the key carries the generation
            retries=self.config.message_retries,
            retry_delay=MESSAGE_RETRY_DELAY,
        )
        await self.transport.publish(message)

    async def flush(self, wakes: list[Wake]) -> None:
        """Wake the runs of these outbox rows: drive each at once, or publish its continuation.

        When serving, a woken run is driven here at once (`EagerDrives.take`) and its row is its
        safety net until that drive is done; the others are published now. What QStash refuses,
        the sweep re-sends.
        """
        published = [wake for wake in wakes if not self.eager.take(wake)]
        sent = await self.outbox.flush(published)
        if sent < len(published):
            log.warning("%d continuation(s) not published now; the watchdog re-sends them", len(published) - sent)

    # -- eager drives (eager.py) -----------------------------------------------------------

    def serve(self) -> None:
        """This process serves deliveries: from now on it drives the runs it starts or wakes at once.

        Called by the app's lifespan. A process that only builds the services (the CLI, a test)
        never drives a run outside a delivery.
        """
        self.eager.serve()

    async def close(self) -> None:
        """Stop driving eagerly (at shutdown): queued runs go to QStash, drives under way get a grace."""
        await self.eager.close()

    def workflow_exists(self, name: str) -> bool:
        return name in self.registry.names()

    # -- events, cancel, resume, stuck runs ---------------------------------------------

    async def notify(self, event_id: str, data: Any = None, *, source: str | None = None) -> list[str]:
        """Wake the runs waiting for `event_id` (or keep it for the first waiter); returns run IDs.

        `data` is kept like a step result, so it must be JSON within WORKFLOW_MAX_STEP_OUTPUT_BYTES.
        """
        check_size(data, what=f"notify data for {event_id!r}", limit=self.config.max_step_output_bytes)
        keep_for = timedelta(seconds=self.config.notification_ttl_s)
        wakes, woken = await self.store.notify(event_id, data, keep_for=keep_for, source=source)
        await self.flush(wakes)
        return woken

    async def cancel(self, run_id: str) -> list[str]:
        """Cancel a run (and its children) at its next step boundary; returns the runs cancelled."""
        cancelled = await self.store.cancel_run(run_id)
        if cancelled:
            log.info("cancelled %s", ", ".join(ref.run_id for ref in cancelled))
        return [ref.run_id for ref in cancelled]

    async def resume(self, run_id: str) -> WorkflowRun:
        """Continue a failed run at the step that failed; completed steps are kept."""
        run, restarts = await self.store.prepare_resume(run_id, key=f"resume-{secrets.token_hex(4)}")
        if run is None:
            raise NotFound(f"no run {run_id}")
        if not restarts:
            raise Conflict(f"run {run_id} is {run.status}; only failed runs can be resumed")
        await self.flush(restarts)
        return run

    async def recover_stuck(self, *, older_than: timedelta) -> list[str]:
        """Re-send continuations left in the outbox, and re-publish runs nothing will move (watchdog)."""
        await self.store.prune_notifications(older_than=timedelta(seconds=self.config.notification_ttl_s))
        resent = await self.outbox.sweep(older_than=OUTBOX_SWEEP_AFTER, now=self.clock())
        if resent:
            log.warning("re-sent %d continuation(s) left in the outbox", resent)
        recovered = []
        for run in await self.store.find_stuck(older_than=older_than):
            if await self.store.record_stuck(run.id):
                log.warning(
                    "run %s (%s) was stuck in %s; re-published its continuation", run.id, run.workflow, run.status
                )
                await self.publish_continue(run, 0, f"watchdog-{secrets.token_hex(4)}", None)
                recovered.append(run.id)
        return recovered

    async def watchdog(self) -> None:
        """At start and every `watchdog_interval_s`, recover stuck runs (see `find_stuck`)."""
        stuck_after = timedelta(seconds=self.config.watchdog_stuck_after_s)
        while True:
            try:
                await self.recover_stuck(older_than=stuck_after)
            except Exception as exc:  # keep watching; the next round tries again
                log.warning("watchdog round failed: %s", exc)
            await asyncio.sleep(self.config.watchdog_interval_s)

    # -- deliveries -----------------------------------------------------------------------

    async def handle_delivery(self, workflow: str, body: bytes) -> Answer:
        """A continuation message for `workflow` arrived (already signature-checked)."""
        self.registry.get(workflow)
        try:
            request = DeliveryRequest.model_validate_json(body)
        except ValidationError as exc:
            raise BadRequest(f"delivery body is not a run continuation: {exc}") from exc
        return await self.drive(request.run_id, workflow)

    async def handle_call_result(self, workflow: str, run_id: str, position: int, body: bytes) -> Answer:
        """QStash's callback (or failure callback) for a `ctx.call` step."""
        try:
            data = json.loads(body)
            status = data.get("status")
        except (ValueError, AttributeError) as exc:
            raise BadRequest("call result body is not a QStash callback") from exc
        result, error = call_outcome(data, status)
        if result is None and error is None:
            return IGNORED  # a failed attempt QStash will retry
        if result is not None:
            try:  # the answer is kept as the step's result: it must fit like one
                check_size(result, what=f"the answer to call step {position}", limit=self.config.max_step_output_bytes)
            except WorkflowError as exc:
                result, error = None, exc.message
        await self.store.resolve_call(run_id, position=position, result=result, error=error)
        return await self.drive(run_id, workflow)

    async def drive(self, run_id: str, workflow: str) -> Answer:
        owner = f"{self.instance}-{secrets.token_hex(4)}"
        leased = await self._acquire(run_id, owner)
        if isinstance(leased, Answer):
            return leased
        lease: Lease | None = leased
        token, labels_token = workflow_id_var.set(run_id), run_labels_var.set(leased.run.labels)
        released = False
        try:
            if leased.run.workflow != workflow:
                raise BadRequest(f"run {run_id} belongs to workflow {leased.run.workflow!r}, not {workflow!r}")
            async with self._heartbeat(run_id, owner):
                while lease is not None:  # again while deliveries rang meanwhile
                    driver = self._driver(lease.run, owner, lease.steps)
                    await driver.drive()
                    if driver.finished:  # the run's last write gave the lease back
                        break
                    lease = await self.store.release_or_answer(run_id, owner)
            released = True  # given back (by the last write or release_or_answer): no second UPDATE
            return DONE
        except LeaseLostError:
            log.warning("lost the lease while driving; another delivery carries on")
            return IGNORED
        except RunCancelledError:
            log.info("run was cancelled; the delivery stops")
            return IGNORED
        except BadRequest:
            raise
        except Exception as exc:  # the infrastructure's fault, never the run's: deliver again
            log.warning("delivery stopped by %s: %s; QStash will deliver it again", type(exc).__name__, exc)
            return RETRY
        finally:
            if not released:
                await self._release(run_id, owner)
            workflow_id_var.reset(token)
            run_labels_var.reset(labels_token)

    async def _release(self, run_id: str, owner: str) -> None:
        try:
            await self.store.release_lease(run_id, owner)
        except Exception as exc:  # the lease lapses by itself after lease_ttl_s
            log.warning("could not release the lease of %s: %s", run_id, exc)

    def _driver(self, run: WorkflowRun, owner: str, history: dict[int, WorkflowStep] | None = None) -> Driver:
        return Driver(
            run=run,
            workflow=self.registry.get(run.workflow),
            steps=history,
            store=self.store,
            publisher=self,
            config=self.config,
            owner=owner,
            deps=self.deps,
            clock=self.clock,
            hooks=self.hooks,
        )

    async def _acquire(self, run_id: str, owner: str) -> Lease | Answer:
        """The lease, with the run and its recorded steps, or why not: IGNORED (finished or unknown), QUEUED or BUSY.

        When another delivery holds the lease, this one rings its doorbell in the same
        transaction (`store.acquire_or_ring`): the holder drives the run once more before it
        lets go, so this delivery is acknowledged (QUEUED) and nothing it carried is lost. If
        the holder died, its lease lapses and the watchdog re-publishes the run. Only a lease
        that changed hands between the two statements of every try for `lease_wait_s` (it
        takes contention Postgres alone can produce) is answered BUSY (429).
        """
        deadline = asyncio.get_running_loop().time() + self.config.lease_wait_s
        delay = 0.02
        while True:
            leased = await self.store.acquire_or_ring(run_id, owner, self.config.lease_ttl_s)
            if isinstance(leased, Lease):
                return leased
            if leased is Ring.RANG:
                return QUEUED
            if leased is Ring.FINISHED:
                log.info("delivery for run %s ignored: finished or unknown", run_id)
                return IGNORED
            if asyncio.get_running_loop().time() >= deadline:
                return Answer(Outcome.BUSY, 1)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.25)

    @contextlib.asynccontextmanager
    async def _heartbeat(self, run_id: str, owner: str) -> AsyncIterator[None]:
        async def renew() -> None:
            while True:
                await asyncio.sleep(self.config.lease_ttl_s / 3)
                try:
                    if not await self.store.renew_lease(run_id, owner, self.config.lease_ttl_s):
                        return
                except Exception as exc:  # a database blip: try again at the next beat
                    log.warning("could not renew the lease of %s: %s", run_id, exc)

        task = asyncio.create_task(renew())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _kept_labels(labels: Mapping[str, str | None] | None) -> dict[str, str]:
    return {key: str(value) for key, value in (labels or {}).items() if value is not None}
