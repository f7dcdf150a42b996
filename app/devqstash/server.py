"""`DevQStash`: the embedded QStash-compatible server (development and tests).

It answers the QStash REST v2 routes of `router` (mounted by the app at `/qstash`), keeps
every message and schedule in the app's own database, delivers messages from a background
loop (`delivery.DeliveryLoop`) over real, signed HTTP, and fires cron schedules from another
(`scheduler.CronLoop`), which publishes each tick through the same message path. The
official `qstash` client pointed at `<base>/qstash` works against it unchanged.

The methods below are the service layer the router calls; each runs in one transaction that
commits before the route answers, so a message whose publish was acknowledged survives a
crash. After a publish this process's loop is woken at once (low latency); other processes
on the same database find the message at their next poll.

Out of scope (answered 404 by FastAPI, or 400 where a request names them): URL groups,
API destinations, queues' parallelism, flow control, key rotation.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import HTTP_KEEPALIVE_S
from app.db import transaction
from app.devqstash import dlq, events, scheduler, store
from app.devqstash.delivery import DeliveryLoop
from app.devqstash.models import QStashDlqEntry, QStashEvent, QStashMessage, QStashSchedule
from app.devqstash.spec import MessageSpec, parse_spec, spec_headers
from app.errors import NotFound, Unauthorized


class DevQStash:
    """The embedded QStash server: REST routes (`router`) plus the delivery loop."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient | None = None,
        token: str,
        signing_keys: tuple[str, str],
        retry_scale: float = 1.0,
        default_retries: int = 3,
        delivery_timeout_s: float = 900.0,
        poll_interval_s: float = 0.25,
        concurrency: int = 32,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessions = sessions
        self._token = token
        # Its own connections, like the real QStash: a delivery holds one for as long as the
        # run it drives works, and must not take the ones that run needs for its publishes and
        # its calls out (with one shared pool, 32 deliveries each publishing 20 child starts
        # exhausted it and every request waited out the pool timeout).
        self._owned_http = http is None
        if http is None:
            limits = httpx.Limits(
                max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=HTTP_KEEPALIVE_S
            )
            http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0), limits=limits)
        self._http = http
        self.signing_keys = signing_keys
        self._default_retries = default_retries
        self._loop = DeliveryLoop(
            sessions=sessions,
            http=http,
            signing_key=lambda: self.signing_keys[0],
            retry_scale=retry_scale,
            delivery_timeout_s=delivery_timeout_s,
            poll_interval_s=poll_interval_s,
            concurrency=concurrency,
            clock=clock,
        )
        self._cron = scheduler.CronLoop(
            sessions=sessions, published=self._loop.wake, poll_interval_s=poll_interval_s, clock=clock
        )

    async def start(self) -> None:
        """Start the background delivery and cron loops (from the app's lifespan)."""
        await self._loop.start()
        await self._cron.start()

    async def stop(self) -> None:
        """Stop firing schedules and delivering; in-flight messages are redelivered later.

        It can be started again; `aclose` (at shutdown) closes its own connections."""
        await self._cron.stop()
        await self._loop.stop()

    async def aclose(self) -> None:
        """Stop, and close the HTTP client it made for itself (after this it cannot start again)."""
        await self.stop()
        if self._owned_http:
            await self._http.aclose()

    def now(self) -> datetime:
        return self._loop.now()

    def authorize(self, token: str | None) -> None:
        """Raise `Unauthorized` unless `token` is this server's QStash token."""
        if not token or not secrets.compare_digest(token.encode(), self._token.encode()):
            raise Unauthorized("missing or invalid QStash token: send `Authorization: Bearer <QSTASH_TOKEN>`")

    def parse(
        self,
        destination: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        *,
        queue_name: str | None = None,
        caller_ip: str | None = None,
    ) -> MessageSpec:
        """A message spec from a publish request's destination, headers and body."""
        return parse_spec(
            destination,
            headers,
            body,
            default_retries=self._default_retries,
            now=self.now(),
            queue_name=queue_name,
            caller_ip=caller_ip,
        )

    async def publish(self, specs: Sequence[MessageSpec]) -> list[tuple[str, bool]]:
        """Store messages in one transaction; `(message_id, deduplicated)` for each, in order."""
        now = self.now()
        async with transaction(self._sessions) as session:
            results = [await store.publish(session, spec, now=now) for spec in specs]
        for spec in specs:
            self._loop.wake(spec.not_before)
        return results

    async def get_message(self, message_id: str) -> QStashMessage:
        async with transaction(self._sessions) as session:
            message = await store.active_message(session, message_id)
        if message is None:
            raise NotFound(f"message {message_id!r} not found: unknown, already delivered, failed or cancelled")
        return message

    async def cancel(self, message_ids: Sequence[str] | None) -> int:
        """Cancel pending or in-flight messages (all when `message_ids` is None)."""
        async with transaction(self._sessions) as session:
            return await store.cancel(session, message_ids, now=self.now())

    async def list_dlq(
        self, *, filters: dlq.DlqFilter, cursor: str | None, count: int
    ) -> tuple[list[tuple[QStashDlqEntry, QStashMessage]], str | None]:
        async with transaction(self._sessions) as session:
            return await dlq.list_entries(session, filters=filters, cursor=cursor, count=count)

    async def get_dlq(self, dlq_id: str) -> tuple[QStashDlqEntry, QStashMessage]:
        async with transaction(self._sessions) as session:
            found = await dlq.get(session, dlq_id)
        if found is None:
            raise NotFound(f"DLQ entry {dlq_id!r} not found")
        return found

    async def delete_dlq(self, dlq_ids: Sequence[str]) -> int:
        async with transaction(self._sessions) as session:
            return await dlq.remove(session, dlq_ids)

    async def retry_dlq(self, dlq_id: str, overrides: Iterable[tuple[str, str]], *, caller_ip: str | None) -> str:
        """Publish a fresh copy of a dead message (request `Upstash-*` headers override) and drop the entry."""
        now = self.now()
        async with transaction(self._sessions) as session:
            found = await dlq.get(session, dlq_id)
            if found is None:
                raise NotFound(f"DLQ entry {dlq_id!r} not found")
            message = found[1]
            headers = _override(spec_headers(message), overrides)
            spec = parse_spec(
                message.url,
                headers,
                message.body,
                default_retries=self._default_retries,
                now=now,
                queue_name=message.queue_name,
                caller_ip=caller_ip or message.caller_ip,
            )
            message_id, _ = await store.publish(session, spec, now=now)
            await dlq.remove(session, [dlq_id])
        self._loop.wake(spec.not_before)
        return message_id

    async def create_schedule(
        self, destination: str, headers: Iterable[tuple[str, str]], body: bytes, *, caller_ip: str | None
    ) -> str:
        """Create a schedule, or replace the one named by `Upstash-Schedule-Id`; returns its ID."""
        now = self.now()
        spec = scheduler.parse_schedule(
            destination, headers, body, default_retries=self._default_retries, now=now, caller_ip=caller_ip
        )
        async with transaction(self._sessions) as session:
            schedule_id = await scheduler.upsert(session, spec, now=now)
        self._cron.wake()
        return schedule_id

    async def list_schedules(self) -> list[QStashSchedule]:
        async with transaction(self._sessions) as session:
            return await scheduler.list_all(session)

    async def get_schedule(self, schedule_id: str) -> QStashSchedule:
        async with transaction(self._sessions) as session:
            schedule = await scheduler.get(session, schedule_id)
        if schedule is None:
            raise NotFound(f"schedule {schedule_id!r} not found")
        return schedule

    async def delete_schedule(self, schedule_id: str) -> None:
        async with transaction(self._sessions) as session:
            if not await scheduler.remove(session, schedule_id):
                raise NotFound(f"schedule {schedule_id!r} not found")

    async def pause_schedule(self, schedule_id: str, *, paused: bool) -> None:
        """Pause a schedule, or resume it from its next fire time after now."""
        async with transaction(self._sessions) as session:
            if not await scheduler.set_paused(session, schedule_id, paused, now=self.now()):
                raise NotFound(f"schedule {schedule_id!r} not found")
        self._cron.wake()

    async def list_events(
        self, *, filters: events.EventFilter, cursor: int | None, count: int
    ) -> tuple[list[QStashEvent], int | None]:
        async with transaction(self._sessions) as session:
            return await events.list_events(session, filters=filters, cursor=cursor, count=count)

    async def usage_per_day(self, *, since: datetime) -> list[dict[str, Any]]:
        """Messages created per UTC day and destination, as far back as the event log goes."""
        async with transaction(self._sessions) as session:
            return await events.usage_per_day(session, since=since)


def _override(headers: list[tuple[str, str]], overrides: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Stored configuration headers with the request's `Upstash-*` headers replacing same-named ones."""
    replacing = [(name, value) for name, value in overrides if name.lower().startswith("upstash-")]
    names = {name.lower() for name, _ in replacing}
    return [(name, value) for name, value in headers if name.lower() not in names] + replacing
