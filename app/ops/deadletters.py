"""Dead letters from every source behind one interface, for `/ops/dlq` and `curaway dlq`.

A `DeadLetterSource` lists its dead letters and replays one. An ops ID is `<source>:<id>`
(`qstash:1733212800000-000000001`), so one route replays from any source. Today's source is
QStash's DLQ, through its REST API (`QStashClient`), which is the embedded server's
(`app/devqstash/dlq.py`) in development and Upstash's in production; the second is webhook
deliveries that gave up on their hospital (`webhook:<delivery id>`, `app.providers.deliveries`),
whose replay starts a new attempt series with the same `webhook-id`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import BadRequest, NotFound
from app.ops.errors import UpstreamUnavailable
from app.providers import deliveries
from app.runtime.runtime import Runtime
from app.runtime.transport import QStashClient, TransportError


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: str  # <source>:<source's id>
    source: str
    url: str
    workflow_run_id: str | None
    response_status: int | None
    error: str | None
    body: str | None
    created_at: datetime | None


@dataclass(frozen=True, slots=True)
class DeadLetterPage:
    items: list[DeadLetter]
    cursor: str | None


class DeadLetterSource(Protocol):
    name: str

    async def list(self, *, cursor: str | None, count: int) -> DeadLetterPage: ...

    async def replay(self, source_id: str) -> str:
        """Send the dead letter again; returns the new message's (or delivery's) ID."""
        ...


class QStashDeadLetters:
    """QStash's DLQ over its REST API (embedded or Upstash)."""

    name = "qstash"

    def __init__(self, qstash: QStashClient) -> None:
        self.qstash = qstash

    async def list(self, *, cursor: str | None, count: int) -> DeadLetterPage:
        try:
            data = await self.qstash.list_dlq(cursor=cursor, count=count)
        except TransportError as exc:
            raise UpstreamUnavailable(f"could not list QStash's DLQ: {exc}") from exc
        items = [self._letter(m) for m in data.get("messages", [])]
        return DeadLetterPage(items, data.get("cursor") or None)

    async def replay(self, source_id: str) -> str:
        try:
            await self.qstash.get_dlq(source_id)
        except TransportError as exc:
            if " 404:" in str(exc):
                raise NotFound(f"no dead letter qstash:{source_id}") from exc
            raise UpstreamUnavailable(f"could not read QStash's DLQ: {exc}") from exc
        try:
            published = await self.qstash.retry_dlq(source_id)
        except TransportError as exc:
            raise UpstreamUnavailable(f"QStash refused to replay {source_id}: {exc}") from exc
        return published.message_id

    def _letter(self, message: dict[str, Any]) -> DeadLetter:
        created = message.get("createdAt")
        return DeadLetter(
            id=f"{self.name}:{message['dlqId']}",
            source=self.name,
            url=str(message.get("url", "")),
            workflow_run_id=_run_id(message.get("body")),
            response_status=message.get("responseStatus"),
            error=message.get("error") or _short(message.get("responseBody")),
            body=_short(message.get("body")),
            created_at=datetime.fromtimestamp(created / 1000, UTC) if created else None,
        )


class WebhookDeadLetters:
    """Webhook deliveries dead-lettered by the webhook-delivery workflow (`provider_webhooks`)."""

    name = "webhook"

    def __init__(self, sessions: async_sessionmaker[AsyncSession], runtime: Runtime) -> None:
        self.sessions = sessions
        self.runtime = runtime

    async def list(self, *, cursor: str | None, count: int) -> DeadLetterPage:
        try:
            before = datetime.fromisoformat(cursor) if cursor else None
        except ValueError as exc:
            raise BadRequest(f"cursor {cursor!r} is not one this list returned") from exc
        async with self.sessions() as session:
            rows = await deliveries.list_dead_letters(session, before=before, limit=count)
        items = [
            DeadLetter(
                id=f"{self.name}:{row.id}",
                source=self.name,
                url=f"provider:{row.provider_id}",
                workflow_run_id=row.workflow_run_id,
                response_status=row.last_status,
                error=row.reason or row.last_error,
                body=None,  # the packet holds patient data: it is never shown here
                created_at=row.finished_at,
            )
            for row in rows
        ]
        last = rows[-1].finished_at if len(rows) == count else None
        return DeadLetterPage(items, last.isoformat() if last else None)

    async def replay(self, source_id: str) -> str:
        async with self.sessions() as session:
            replayed = await deliveries.replay_dead_letter(session, runtime=self.runtime, delivery_id=source_id)
        return str(replayed["workflow_run_id"])


class DeadLetters:
    """All sources; `list` merges their first pages, `replay` routes by the ID's source prefix."""

    def __init__(self, sources: list[DeadLetterSource]) -> None:
        self.sources = {source.name: source for source in sources}

    def add(self, source: DeadLetterSource) -> None:
        self.sources[source.name] = source

    async def list(self, *, source: str | None = None, cursor: str | None = None, count: int = 50) -> DeadLetterPage:
        if source is not None and source not in self.sources:
            raise BadRequest(f"unknown dead-letter source {source!r}; known: {', '.join(self.sources)}")
        if source is not None:
            return await self.sources[source].list(cursor=cursor, count=count)
        items: list[DeadLetter] = []
        for each in self.sources.values():
            items.extend((await each.list(cursor=None, count=count)).items)
        items.sort(key=lambda d: d.created_at or datetime.min.replace(tzinfo=UTC), reverse=True)
        return DeadLetterPage(items[:count], None)

    async def replay(self, dead_letter_id: str) -> str:
        source, sep, source_id = dead_letter_id.partition(":")
        if not sep or not source_id:
            raise BadRequest(f"dead-letter ID {dead_letter_id!r} must look like '<source>:<id>' (e.g. 'qstash:...')")
        if source not in self.sources:
            raise NotFound(f"no dead-letter source {source!r}; known: {', '.join(self.sources)}")
        return await self.sources[source].replay(source_id)


def _run_id(body: Any) -> str | None:
    if isinstance(body, str) and '"run_id"' in body:
        try:
            value = json.loads(body).get("run_id")
        except (ValueError, AttributeError):
            return None
        return value if isinstance(value, str) else None
    return None


def _short(text: Any, limit: int = 500) -> str | None:
    if not isinstance(text, str) or not text:
        return None
    return text if len(text) <= limit else text[:limit] + "..."
