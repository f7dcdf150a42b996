"""`curaway runs|events|usage|dlq`: the ops API's views in a terminal (tables, or `--json`).

Runs, events and usage are read from the database (`DATABASE_URL`) with the same services as
`/ops/*`, so they work with the server down; dead letters come from QStash (`QSTASH_URL`, or
the embedded server of the app serving at `PUBLIC_BASE_URL`, which must then be running).
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import create_engine, session_factory, utcnow
from app.errors import HTTPFacingError
from app.ops import service
from app.ops.deadletters import DeadLetters
from app.ops.usage import Quota


@asynccontextmanager
async def _session(settings: Settings) -> AsyncIterator[AsyncSession]:
    engine = create_engine(settings.database_url)
    try:
        async with session_factory(engine)() as session:
            yield session
    finally:
        await engine.dispose()


def _print_json(value: BaseModel | Sequence[BaseModel] | dict[str, Any]) -> None:
    if isinstance(value, BaseModel):
        data: Any = value.model_dump(mode="json")
    elif isinstance(value, dict):
        data = value
    else:
        data = [item.model_dump(mode="json") for item in value]
    print(json.dumps(data, indent=2))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


async def runs_list(settings: Settings, *, as_json: bool, limit: int, **filters: Any) -> int:
    async with _session(settings) as session:
        page = await service.list_runs(session, limit=limit, **filters)
    if as_json:
        _print_json(page)
        return 0
    if not page.items:
        print("no runs")
        return 0
    rows = [(r.id, r.workflow, r.status, r.case_id, r.document_id, r.created_at) for r in page.items]
    print(table(["run", "workflow", "status", "case", "document", "created"], rows))
    if page.next_cursor:
        print(f"(more: --cursor {page.next_cursor})")
    return 0


async def runs_show(settings: Settings, run_id: str, *, as_json: bool) -> int:
    async with _session(settings) as session:
        try:
            run = await service.run_detail(session, run_id=run_id)
        except HTTPFacingError:
            print(f"no run {run_id}", file=sys.stderr)
            return 1
    if as_json:
        _print_json(run)
        return 0
    print(f"{run.id}  {run.workflow}  {run.status}")
    for name, value in (("labels", run.labels), ("parent", run.parent_run_id), ("error", run.error)):
        if value:
            print(f"{name}: {value}")
    print("\nsteps:")
    rows = [(s.position, s.name, s.kind, s.status, s.attempts, s.started_at, s.duration_ms, s.error) for s in run.steps]
    print(table(["#", "step", "kind", "status", "attempts", "started", "ms", "last error"], rows))
    for step in run.steps:
        for attempt in step.attempt_history:
            if attempt.outcome == "failed":
                print(f"  {step.name} attempt {attempt.attempt}: {attempt.error}")
    for child in run.children:
        print(f"child: {child.id} {child.workflow} {child.status}")
    for wait in run.waiting_for:
        print(f"waits at {wait.step}: {wait.waits_for} {wait.target or ''} until {_cell(wait.until)}")
    print("\nevents:")
    print(_events_table(run.events))
    return 0


def _events_table(events: Sequence[Any]) -> str:
    rows = [
        (e.id, e.created_at.strftime("%H:%M:%S.%f")[:-3], e.type, json.dumps(e.payload, default=str)) for e in events
    ]
    return table(["id", "at", "type", "payload"], rows)


async def events(settings: Settings, *, as_json: bool, **filters: Any) -> int:
    async with _session(settings) as session:
        found = await service.list_events(session, limit=service.MAX_EVENTS, **filters)
    if as_json:
        _print_json(found)
    elif not found:
        print("no events")
    else:
        print(_events_table(found))
    return 0


async def usage(settings: Settings, *, days: int, as_json: bool) -> int:
    quota = Quota(
        settings.ops_qstash_daily_quota, settings.ops_qstash_price_per_100k, settings.ops_qstash_quota_warn_ratio
    )
    async with _session(settings) as session:
        report = await service.usage_report(session, quota=quota, today=utcnow(), days=days)
    if as_json:
        _print_json(report)
        return 0
    print(f"QStash messages per day (quota {quota.daily}/day, ${quota.price_per_100k:g} per 100k)")
    rows = [
        (
            d.day,
            d.messages,
            f"{d.quota_share:.0%}",
            d.inline_steps,
            f"{d.saved_share:.0%}",
            f"${d.cost:.4f}",
            ", ".join(f"{w}={n}" for w, n in sorted(d.by_workflow.items())),
        )
        for d in report.days
    ]
    print(table(["day", "messages", "of quota", "inline steps", "saved", "cost", "by workflow"], rows))
    print(
        f"total {report.total_messages} messages, {report.saved_share:.0%} saved by inline continuation, "
        f"${report.total_cost:.4f}"
    )
    return 0


async def dlq(letters: DeadLetters, action: str, dead_letter_id: str | None, *, as_json: bool) -> int:
    """QStash's DLQ and the webhook deliveries' dead letters (`app.cli` builds `letters`)."""
    try:
        if action == "replay":
            assert dead_letter_id is not None
            replayed = await letters.replay(dead_letter_id)
            print(f"replayed {dead_letter_id} as {replayed}")
            return 0
        page = await letters.list(count=100)
    except HTTPFacingError as exc:
        print(exc.detail, file=sys.stderr)
        return 1
    if as_json:
        _print_json({"items": [vars_of(d) for d in page.items]})
    elif not page.items:
        print("no dead letters")
    else:
        rows = [(d.id, d.created_at, d.response_status, d.workflow_run_id, d.url, d.error) for d in page.items]
        print(table(["id", "created", "status", "run", "url", "error"], rows))
    return 0


def vars_of(letter: Any) -> dict[str, Any]:
    return {
        k: (v.isoformat() if isinstance(v, datetime) else v)
        for k, v in ((f, getattr(letter, f)) for f in letter.__dataclass_fields__)
    }
