"""Cron schedules declared in code, and their sync to QStash (DESIGN 4, "scheduled-jobs").

A `Schedule` names a job, its cron expression and time zone, the workflow each tick starts
and that workflow's payload. `sync_schedules` upserts every declared schedule to QStash under
its name (`Upstash-Schedule-Id: <name>`, so syncing twice changes nothing) with the
destination `<base_url>/schedules/<name>`, the tick endpoint of `app.runtime.cron`, and
deletes schedules that point at that endpoint but are no longer declared.

Cron expressions (`Cron`) are evaluated with `cronsim` in the schedule's zone:
- five fields (`minute hour day-of-month month day-of-week`), as QStash takes them, with an
  optional `CRON_TZ=Area/City ` prefix (default UTC);
- six fields (seconds first, as cronsim reads them) are accepted too: an extension that only
  the embedded QStash server understands, for tests that need a schedule every second.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from app.errors import CurawayError
from app.runtime.transport import Message, QStashClient

SCHEDULE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_TZ_PREFIX = re.compile(r"CRON_TZ=(\S+)\s+(.*)", re.DOTALL)


class CronError(CurawayError, ValueError):
    """A cron expression or time zone that cannot be evaluated; the message says why."""


@dataclass(frozen=True, slots=True)
class Cron:
    """A parsed cron expression: its fields and the zone they are read in."""

    fields: str
    zone: ZoneInfo

    @classmethod
    def parse(cls, text: str) -> Cron:
        """`[CRON_TZ=Area/City ]<5 or 6 fields>`; raises `CronError` with what is wrong."""
        text = text.strip()
        zone_name, fields = "UTC", text
        if match := _TZ_PREFIX.fullmatch(text):
            zone_name, fields = match.group(1), match.group(2).strip()
        fields = " ".join(fields.split())
        cron = cls(fields, _zone(zone_name))
        count = len(fields.split())
        if count not in (5, 6):
            raise CronError(
                f"cron expression {text!r} has {count} fields; use five (minute hour day month weekday), "
                "optionally prefixed by CRON_TZ=Area/City, e.g. 'CRON_TZ=Europe/Berlin 0 9 * * *'"
            )
        try:
            cron.next_after(datetime.now(UTC))
        except (CronSimError, StopIteration) as exc:
            reason = str(exc) or "it never fires"
            raise CronError(f"cron expression {text!r} is invalid: {reason}") from exc
        return cron

    def __str__(self) -> str:
        return f"CRON_TZ={self.zone.key} {self.fields}"

    def next_after(self, moment: datetime) -> datetime:
        """The first fire time strictly after `moment`, in UTC."""
        return next(CronSim(self.fields, moment.astimezone(self.zone))).astimezone(UTC)

    def latest_at_or_before(self, moment: datetime) -> datetime:
        """The most recent fire time at or before `moment` (whole seconds), in UTC."""
        start = moment.replace(microsecond=0) + timedelta(seconds=1)  # cronsim steps back once first
        return next(CronSim(self.fields, start.astimezone(self.zone), reverse=True)).astimezone(UTC)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CronError(f"unknown time zone {name!r} in CRON_TZ; use an IANA name such as Europe/Berlin") from exc


@dataclass(frozen=True, slots=True)
class Schedule:
    """A cron job declared in code: each tick starts one run of `workflow` with `payload`."""

    name: str
    cron: str  # five fields (six, seconds first, on the embedded server only), no CRON_TZ prefix
    workflow: str
    payload: Any
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if not SCHEDULE_NAME.fullmatch(self.name):
            raise CronError(
                f"schedule name {self.name!r} must be 1-100 letters, digits, '_', '.' or '-' "
                "(it is the QStash schedule ID and part of the tick URL)"
            )
        if self.cron.strip().startswith("CRON_TZ="):
            raise CronError(f"schedule {self.name!r}: give the time zone as timezone=..., not in the cron")
        self.parsed()

    def parsed(self) -> Cron:
        return Cron.parse(self.upstash_cron)

    @property
    def upstash_cron(self) -> str:
        """The `Upstash-Cron` header value: `CRON_TZ=<timezone> <cron>`."""
        return f"CRON_TZ={self.timezone} {' '.join(self.cron.split())}"

    def destination(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/schedules/{self.name}"


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What `sync_schedules` did with one schedule."""

    name: str
    action: Literal["upserted", "deleted"]
    cron: str
    destination: str


async def sync_schedules(
    qstash: QStashClient, schedules: list[Schedule], base_url: str, *, prune: bool = True
) -> list[SyncResult]:
    """Upsert every declared schedule (by name); with `prune`, delete undeclared ones of ours."""
    names = [schedule.name for schedule in schedules]
    if len(set(names)) != len(names):
        raise CronError(f"two schedules share a name: {sorted(n for n in set(names) if names.count(n) > 1)}")
    results = []
    for schedule in schedules:
        message = Message(destination=schedule.destination(base_url), body=json.dumps(schedule.payload))
        await qstash.upsert_schedule(message, schedule.upstash_cron, schedule_id=schedule.name)
        results.append(SyncResult(schedule.name, "upserted", schedule.upstash_cron, message.destination))
    if prune:
        results += await _prune(qstash, set(names), base_url)
    return results


async def _prune(qstash: QStashClient, declared: set[str], base_url: str) -> list[SyncResult]:
    """Delete schedules that target our tick endpoint under a name no longer declared."""
    prefix = f"{base_url.rstrip('/')}/schedules/"
    deleted = []
    for existing in await qstash.list_schedules():
        destination, schedule_id = existing.get("destination", ""), existing.get("scheduleId", "")
        if destination.startswith(prefix) and schedule_id not in declared:
            await qstash.delete_schedule(schedule_id)
            deleted.append(SyncResult(schedule_id, "deleted", existing.get("cron", ""), destination))
    return deleted
