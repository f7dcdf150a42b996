"""QStash usage, counted where we publish: messages per workflow per UTC day, against a quota.

`CountingQStash` is the runtime's transport with a counter on `publish`/`batch`, so the count
is the same against the embedded server and against Upstash (which bills each message we
publish; a deduplicated publish is not a new message and is not counted). The workflow is read
from the destination (`.../workflows/<name>`), or from the callback for a `ctx.call`.

Counting is in memory (a dict increment on the hot path) and `UsageRecorder.flush()` adds it
to `ops_usage` (one upsert per day and workflow) every `OPS_USAGE_FLUSH_S` and at shutdown;
`/ops/usage` flushes this process's counts first. When a flush takes a day's total past
`OPS_QSTASH_QUOTA_WARN_RATIO` of `OPS_QSTASH_DAILY_QUOTA`, an `alert.quota_warning` event is
written, once per day.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import transaction, utcnow
from app.ops.models import OpsUsage
from app.runtime.models import Event
from app.runtime.transport import Message, Published, QStashClient

log = logging.getLogger(__name__)

QUOTA_WARNING = "alert.quota_warning"  # one of the alerts (app/ops/alerts.py)


def workflow_of(message: Message) -> str:
    """The workflow a message belongs to, from its destination or its callback URL."""
    for url in (message.destination, message.callback or ""):
        parts = urlparse(url).path.strip("/").split("/")
        for marker, prefix in (("workflows", ""), ("schedules", "schedule:")):
            if marker in parts and parts.index(marker) + 1 < len(parts):
                return prefix + parts[parts.index(marker) + 1]
    return "other"


@dataclass(frozen=True, slots=True)
class Quota:
    daily: int = 500
    price_per_100k: float = 1.0
    warn_ratio: float = 0.8


class UsageRecorder:
    """Counts in memory; `flush()` adds the counts to `ops_usage` and raises the quota warning."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        quota: Quota,
        *,
        clock: Callable[[], datetime] = utcnow,
        on_message: Callable[[str, int], None] | None = None,
    ) -> None:
        self.sessions = sessions
        self.quota = quota
        self.clock = clock
        self.on_message = on_message  # e.g. the published-messages metric
        self._pending: defaultdict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        self._flushing = asyncio.Lock()

    def count_message(self, workflow: str, n: int = 1) -> None:
        self._pending[(self._today(), workflow)][0] += n
        if self.on_message is not None:
            self.on_message(workflow, n)

    def count_inline_step(self, workflow: str) -> None:
        self._pending[(self._today(), workflow)][1] += 1

    def _today(self) -> str:
        return self.clock().date().isoformat()

    async def flush(self) -> None:
        """Add the counts so far to the table; on failure they are kept for the next flush.

        Flushes take turns: a flush called while another is under way (the periodic one, when
        `/ops/usage` flushes before it reads) waits for it to commit, so what the caller reads
        afterwards holds every count made before its call.
        """
        async with self._flushing:
            pending, self._pending = self._pending, defaultdict(lambda: [0, 0])
            if not pending:
                return
            try:
                async with transaction(self.sessions) as session:
                    for (day, workflow), (messages, inline) in pending.items():
                        await _add(session, day, workflow, messages, inline)
                    for day in sorted({day for day, _ in pending}):
                        await self._warn_once(session, day)
            except Exception:
                for key, (messages, inline) in pending.items():
                    self._pending[key][0] += messages
                    self._pending[key][1] += inline
                raise

    async def _warn_once(self, session: AsyncSession, day: str) -> None:
        total = await session.scalar(select(func.coalesce(func.sum(OpsUsage.messages), 0)).where(OpsUsage.day == day))
        threshold = self.quota.daily * self.quota.warn_ratio
        if self.quota.daily <= 0 or total < threshold:
            return
        payloads = await session.scalars(select(Event.payload).where(Event.type == QUOTA_WARNING))
        if any(isinstance(p, dict) and p.get("day") == day for p in payloads):
            return
        session.add(
            Event(
                type=QUOTA_WARNING,
                payload={"day": day, "messages": int(total), "quota": self.quota.daily, "ratio": self.quota.warn_ratio},
                created_at=self.clock(),
            )
        )
        log.warning(
            "QStash usage on %s is %d messages, past %d%% of the daily quota %d",
            day,
            total,
            round(self.quota.warn_ratio * 100),
            self.quota.daily,
        )


async def _add(session: AsyncSession, day: str, workflow: str, messages: int, inline: int) -> None:
    """One upsert (`INSERT ... ON CONFLICT DO UPDATE` adding to the counts)."""
    dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(OpsUsage).values(day=day, workflow=workflow, messages=messages, inline_steps=inline)
    stmt = stmt.on_conflict_do_update(
        index_elements=["day", "workflow"],
        set_={"messages": OpsUsage.messages + messages, "inline_steps": OpsUsage.inline_steps + inline},
    )
    await session.execute(stmt)


class CountingQStash(QStashClient):
    """The QStash client with every accepted, non-deduplicated publish counted (hook point)."""

    def __init__(self, base_url: str, token: str, http: Any, recorder: UsageRecorder) -> None:
        super().__init__(base_url, token, http)
        self.recorder = recorder

    async def publish(self, message: Message) -> Published:
        published = await super().publish(message)
        if not published.deduplicated:
            self.recorder.count_message(workflow_of(message))
        return published

    async def batch(self, messages: list[Message]) -> list[Published]:
        published = await super().batch(messages)
        for message, answer in zip(messages, published, strict=False):
            if not answer.deduplicated:
                self.recorder.count_message(workflow_of(message))
        return published


async def usage_rows(session: AsyncSession, *, since: str) -> list[OpsUsage]:
    query = select(OpsUsage).where(OpsUsage.day >= since).order_by(OpsUsage.day, OpsUsage.workflow)
    return list(await session.scalars(query))


def first_day(today: datetime, days: int) -> str:
    return (today.date() - timedelta(days=days - 1)).isoformat()
