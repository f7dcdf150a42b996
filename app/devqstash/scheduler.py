"""Cron schedules of the embedded QStash server (protocol doc 2.2) and the loop that fires them.

A schedule is stored with the configuration of the messages it produces, parsed from the
create request's publish headers exactly like a publish (`spec.parse_spec`): method,
forwarded headers, retries, retry delay, callbacks, timeout, label, queue, and
`Upstash-Delay` (applied to every tick's message). `Upstash-Cron` is required;
`Upstash-Schedule-Id` upserts under a chosen ID (a fresh `scd_...` otherwise).
`Upstash-Not-Before` and deduplication headers are refused: they cannot apply to a
recurring message.

Cron expressions: five fields with an optional `CRON_TZ=Area/City ` prefix, evaluated with
cronsim in that zone (`app.runtime.schedules.Cron`). Extension of the embedded server:
six fields, seconds first, so tests can have a schedule fire every second.

The cron loop, when the earliest fire time it knows of comes (and when woken by a create or
resume, and at least every `REFRESH_S` for schedules made by other processes):
- for each active schedule whose `next_fire_at` has come, advances `next_fire_at` to the
  first fire time after *now* with a conditional `UPDATE ... WHERE next_fire_at = <seen>`,
  and publishes the tick's message in that same transaction. Two loops (processes) on one
  database therefore fire each tick once: on Postgres the second UPDATE waits for the first
  and then matches no row; SQLite serialises the transactions (`BEGIN IMMEDIATE`).
- ticks missed while no loop ran fire once, as the most recent one, not once each.
- the message goes through the normal message path (`store.publish`), so retries, the DLQ,
  callbacks and signing apply. It is delivered with `Upstash-Schedule-Id` and with
  `Upstash-Schedule-Tick: <unix seconds of the tick>` (a forwarded header; real QStash does
  not send it, so receivers must cope without it).

An upsert keeps `created_at`, the paused state and, when the cron is unchanged, the next fire
time (so re-syncing never skips a due tick); a resume recomputes the next fire time from now.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import transaction
from app.devqstash import store
from app.devqstash.models import QStashSchedule
from app.devqstash.spec import MessageSpec, parse_duration_s, parse_spec
from app.devqstash.views import b64, header_map, ms
from app.errors import BadRequest
from app.runtime.background import BackgroundLoop
from app.runtime.schedules import Cron, CronError

logger = logging.getLogger(__name__)

TICK_HEADER = "Upstash-Schedule-Tick"
MAX_DUE_PER_POLL = 100
REFRESH_S = 1.0  # how often the cron loop looks for schedules made by other processes
_SCHEDULE_ID = re.compile(r"[^/\s?#%]{1,100}")
_REFUSED = {
    "upstash-not-before": "Upstash-Not-Before does not apply to a schedule; use Upstash-Delay to delay each tick",
    "upstash-deduplication-id": "deduplication does not apply to a schedule: every tick is a new message",
    "upstash-content-based-deduplication": "deduplication does not apply to a schedule: every tick is a new message",
}
_NO_SYNC = {"synchronize_session": False}


@dataclass(slots=True)
class ScheduleSpec:
    """A parsed create request: the schedule's ID (None: new), cron, and its messages' spec."""

    schedule_id: str | None
    cron: str
    message: MessageSpec
    delay_s: float | None


def parse_cron(text: str) -> Cron:
    try:
        return Cron.parse(text)
    except CronError as exc:
        raise BadRequest(f"Upstash-Cron: {exc}") from exc


def parse_schedule(
    destination: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    *,
    default_retries: int,
    now: datetime,
    caller_ip: str | None,
) -> ScheduleSpec:
    """The schedule a `POST /v2/schedules/{destination}` request describes."""
    pairs = [(name, str(value)) for name, value in headers]
    by_name = {name.lower(): value for name, value in pairs}
    cron = by_name.get("upstash-cron", "").strip()
    if not cron:
        raise BadRequest("the Upstash-Cron header is required, e.g. 'Upstash-Cron: CRON_TZ=Europe/Berlin 0 9 * * *'")
    parse_cron(cron)
    for name, reason in _REFUSED.items():
        if name in by_name:
            raise BadRequest(reason)
    delay = by_name.get("upstash-delay")
    delay_s = None if delay is None else parse_duration_s(delay, header="Upstash-Delay")
    kept = [(name, value) for name, value in pairs if name.lower() not in ("upstash-cron", "upstash-delay")]
    spec = parse_spec(destination, kept, body, default_retries=default_retries, now=now, caller_ip=caller_ip)
    if spec.schedule_id is not None and not _SCHEDULE_ID.fullmatch(spec.schedule_id):
        raise BadRequest(
            f"Upstash-Schedule-Id {spec.schedule_id!r} must be 1-100 characters without '/', '?', '#', '%' or spaces"
        )
    return ScheduleSpec(spec.schedule_id, cron, spec, delay_s)


# -- persistence (session first; the caller owns the transaction) --------------------------


def _insert(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(QStashSchedule)


async def upsert(session: AsyncSession, spec: ScheduleSpec, *, now: datetime) -> str:
    """Create the schedule, or replace the configuration of the one with the same ID."""
    schedule_id = spec.schedule_id or store.new_id("scd_")
    message = spec.message
    values = dict(
        id=schedule_id,
        destination=message.url,
        cron=spec.cron,
        queue_name=message.queue_name,
        method=message.method,
        body=message.body,
        content_type=message.content_type,
        forward_headers=message.forward_headers,
        control_headers=message.control_headers,
        callback=message.callback,
        callback_headers=message.callback_headers,
        failure_callback=message.failure_callback,
        failure_callback_headers=message.failure_callback_headers,
        max_retries=message.max_retries,
        retry_delay=message.retry_delay,
        timeout_s=message.timeout_s,
        delay_s=spec.delay_s,
        label=message.label,
        caller_ip=message.caller_ip,
        is_paused=False,
        next_fire_at=parse_cron(spec.cron).next_after(now),
        created_at=now,
        updated_at=now,
    )
    stmt = _insert(session).values(**values)
    kept = {"id", "created_at", "is_paused", "next_fire_at"}
    replaced: dict[str, Any] = {name: stmt.excluded[name] for name in values if name not in kept}
    replaced["next_fire_at"] = case(
        (QStashSchedule.cron == stmt.excluded.cron, QStashSchedule.next_fire_at), else_=stmt.excluded.next_fire_at
    )
    await session.execute(stmt.on_conflict_do_update(index_elements=[QStashSchedule.id], set_=replaced))
    return schedule_id


async def list_all(session: AsyncSession) -> list[QStashSchedule]:
    query = select(QStashSchedule).order_by(QStashSchedule.created_at, QStashSchedule.id)
    return list(await session.scalars(query))


async def get(session: AsyncSession, schedule_id: str) -> QStashSchedule | None:
    return await session.get(QStashSchedule, schedule_id)


async def remove(session: AsyncSession, schedule_id: str) -> bool:
    """Delete a schedule; messages it already published are kept."""
    result = await session.execute(delete(QStashSchedule).where(QStashSchedule.id == schedule_id))
    return result.rowcount == 1


async def set_paused(session: AsyncSession, schedule_id: str, paused: bool, *, now: datetime) -> bool:
    """Pause, or resume from the first fire time after `now`; False if there is no such schedule."""
    schedule = await session.get(QStashSchedule, schedule_id)
    if schedule is None:
        return False
    values: dict[str, Any] = {"is_paused": paused, "updated_at": now}
    if not paused and schedule.is_paused:
        values["next_fire_at"] = parse_cron(schedule.cron).next_after(now)
    stmt = update(QStashSchedule).where(QStashSchedule.id == schedule_id).values(**values)
    await session.execute(stmt.execution_options(**_NO_SYNC))
    return True


def tick_message(schedule: QStashSchedule, tick: datetime, *, now: datetime) -> MessageSpec:
    """The message one tick of `schedule` publishes."""
    forward = {**schedule.forward_headers, TICK_HEADER: str(int(tick.timestamp()))}
    delay = None if not schedule.delay_s else now + timedelta(seconds=schedule.delay_s)
    return MessageSpec(
        url=schedule.destination,
        body=schedule.body,
        method=schedule.method,
        content_type=schedule.content_type,
        forward_headers=forward,
        control_headers=dict(schedule.control_headers),
        callback=schedule.callback,
        callback_headers=dict(schedule.callback_headers),
        failure_callback=schedule.failure_callback,
        failure_callback_headers=dict(schedule.failure_callback_headers),
        max_retries=schedule.max_retries,
        retry_delay=schedule.retry_delay,
        timeout_s=schedule.timeout_s,
        not_before=delay,
        received_at=now,
        label=schedule.label,
        schedule_id=schedule.id,
        queue_name=schedule.queue_name,
        caller_ip=schedule.caller_ip,
    )


def schedule_view(schedule: QStashSchedule) -> dict[str, Any]:
    """A schedule in the shape of `GET /v2/schedules/{id}` (timestamps in unix ms)."""
    headers = dict(schedule.forward_headers)
    if schedule.content_type:
        headers["Content-Type"] = schedule.content_type
    view: dict[str, Any] = {
        "scheduleId": schedule.id,
        "destination": schedule.destination,
        "cron": schedule.cron,
        "createdAt": ms(schedule.created_at),
        "method": schedule.method,
        "header": header_map(headers),
        "retries": schedule.max_retries,
        "isPaused": schedule.is_paused,
    }
    if schedule.body:
        try:
            view["body"] = schedule.body.decode("utf-8")
        except UnicodeDecodeError:
            view["bodyBase64"] = b64(schedule.body)
    optional = {
        "callback": schedule.callback,
        "callbackHeader": header_map(schedule.callback_headers) if schedule.callback_headers else None,
        "failureCallback": schedule.failure_callback,
        "failureCallbackHeader": (
            header_map(schedule.failure_callback_headers) if schedule.failure_callback_headers else None
        ),
        "retryDelayExpression": schedule.retry_delay,
        "queueName": schedule.queue_name,
        "delay": None if schedule.delay_s is None else round(schedule.delay_s),
        "timeout": None if schedule.timeout_s is None else round(schedule.timeout_s),
        "callerIP": schedule.caller_ip,
        "label": schedule.label,
        "lastScheduleTime": None if schedule.last_fire_at is None else ms(schedule.last_fire_at),
        "nextScheduleTime": None if schedule.is_paused else ms(schedule.next_fire_at),
    }
    view.update({key: value for key, value in optional.items() if value is not None})
    return view


# -- the cron loop ---------------------------------------------------------------------------


class CronLoop:
    """Fires due schedules; see the module docstring for the invariants.

    It reads the database when the earliest fire time it knows of comes, when woken (a create
    or resume in this process), and at least every `refresh_s` (schedules other processes
    created), never more: on SQLite every transaction takes the write lock.
    """

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        published: Callable[[datetime | None], None],
        poll_interval_s: float,
        clock: Callable[[], float],
    ) -> None:
        self._sessions = sessions
        self._published = published  # wakes the delivery loop for a message due at the given time
        self._refresh_s = max(poll_interval_s, REFRESH_S)
        self._clock = clock
        self._next_due: datetime | None = None
        self._background = BackgroundLoop("devqstash-cron", self._round, pause_s=self._pause_s, logger=logger)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def wake(self) -> None:
        self._background.wake()

    async def start(self) -> None:
        self._background.start()

    async def stop(self) -> None:
        """Stop after the current round; a tick is either fired and published, or not at all."""
        await self._background.stop()

    async def _round(self) -> None:
        self._next_due = None  # a round that fails is tried again after `refresh_s`
        await self.fire_due()

    def _pause_s(self) -> float:
        if self._next_due is None:
            return self._refresh_s
        return min(self._refresh_s, (self._next_due - self.now()).total_seconds())

    async def fire_due(self) -> int:
        """Fire every schedule whose time has come; returns how many ticks this loop fired."""
        now = self.now()
        active = QStashSchedule.is_paused.is_(False)
        async with transaction(self._sessions) as session:
            query = select(QStashSchedule).where(active, QStashSchedule.next_fire_at <= now)
            due = list(await session.scalars(query.order_by(QStashSchedule.next_fire_at).limit(MAX_DUE_PER_POLL)))
            upcoming = await session.scalar(
                select(func.min(QStashSchedule.next_fire_at)).where(active, QStashSchedule.next_fire_at > now)
            )
        next_times = [] if upcoming is None else [upcoming]
        fired = 0
        for schedule in due:
            if self._background.stopping:
                break
            following = await self._fire(schedule, now)
            if following is not None:
                fired += following[0]
                next_times.append(following[1])
        self._next_due = now if len(due) == MAX_DUE_PER_POLL else min(next_times, default=None)
        return fired

    async def _fire(self, schedule: QStashSchedule, now: datetime) -> tuple[bool, datetime] | None:
        """Fire one due schedule: `(fired by us, its next fire time)`, None if its cron is broken."""
        try:
            cron = Cron.parse(schedule.cron)
        except CronError:
            logger.exception("schedule %s has an invalid cron; it does not fire", schedule.id)
            return None
        tick, following = max(schedule.next_fire_at, cron.latest_at_or_before(now)), cron.next_after(now)
        spec = tick_message(schedule, tick, now=now)
        async with transaction(self._sessions) as session:
            claim = (
                update(QStashSchedule)
                .where(
                    QStashSchedule.id == schedule.id,
                    QStashSchedule.next_fire_at == schedule.next_fire_at,
                    QStashSchedule.is_paused.is_(False),
                )
                .values(next_fire_at=following, last_fire_at=tick)
            )
            if (await session.execute(claim.execution_options(**_NO_SYNC))).rowcount != 1:
                return False, following  # another loop fired it, or it was paused, changed or deleted meanwhile
            message_id, _ = await store.publish(session, spec, now=now)
            await session.execute(
                update(QStashSchedule).where(QStashSchedule.id == schedule.id).values(last_message_id=message_id)
            )
        logger.debug("schedule %s fired its %s tick as message %s", schedule.id, tick.isoformat(), message_id)
        self._published(spec.not_before)
        return True, following
