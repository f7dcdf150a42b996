"""The `curaway` command: serve, migrate, sync cron schedules, look at workflow runs, and demo
a running service.

    curaway serve [--host H] [--port P]      serve the app (embedded QStash unless QSTASH_URL)
    curaway migrate                          apply the Alembic migrations to DATABASE_URL
    curaway schedules sync [--keep-undeclared]
                                             upsert the declared schedules to QStash by name
                                             and delete ours that are no longer declared
    curaway schedules list [--json]          the declared schedules: cron, zone, next fire time,
                                             last run's outcome, state in QStash
    curaway jobs run NAME                    start a scheduled job now (not while one is unfinished)
    curaway runs list [--workflow W] [--status S] [--case C] [--document D] [--limit N] [--json]
    curaway runs show RUN_ID [--json]        a run, its steps (each attempt), children and events
    curaway runs retry RUN_ID                resume a failed run at the step that failed
    curaway runs cancel RUN_ID               cancel a run (and its children)
    curaway events WORKFLOW_ID [--json]      a run's events, oldest first (or --case / --document)
    curaway usage [--days N] [--json]        QStash messages per day and workflow against the quota
    curaway dlq list [--json]                dead letters (QStash's DLQ, webhook deliveries)
    curaway dlq replay ID                    send a dead letter again
    curaway demo [--url URL] [--documents DIR] [--procedure CODE] [--token T] [--timeout S]
                                             upload a directory of PDFs to a running service and
                                             show their analysis live, then the case's checklist
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import ValidationError
from sqlalchemy import select

from app.config import Settings, settings_error_text
from app.db import create_engine, session_factory
from app.ops import cli as ops_cli
from app.runtime.models import WorkflowRun
from app.runtime.transport import QStashClient


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="curaway",
        description="Curaway's pipeline service. Settings come from the environment (see .env.example).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve the HTTP API, the workflows and the embedded QStash")
    serve.add_argument("--host", help="interface to bind (default: HOST setting, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default: PORT setting, 8000)")

    commands.add_parser("migrate", help="apply database migrations (DATABASE_URL) up to the latest")

    _schedules_parser(commands)
    _jobs_parser(commands)

    runs = commands.add_parser("runs", help="list and inspect workflow runs")
    run_commands = runs.add_subparsers(dest="runs_command", required=True, metavar="SUBCOMMAND")
    listing = run_commands.add_parser("list", help="the most recent runs, newest first")
    listing.add_argument("--workflow", help="only runs of this workflow")
    listing.add_argument("--status", help="only runs in this status (e.g. failed)")
    listing.add_argument("--case", dest="case_id", help="only runs of this case (case_...)")
    listing.add_argument("--document", dest="document_id", help="only runs of this document")
    listing.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    listing.add_argument("--cursor", help="continue after a previous page (printed at its end)")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    show = run_commands.add_parser("show", help="a run with its steps and events")
    show.add_argument("run_id", help="the run's wfr_ ID")
    show.add_argument("--json", action="store_true", help="print JSON instead of text")
    retry = run_commands.add_parser("retry", help="resume a failed run at the step that failed (the server must be up)")
    retry.add_argument("run_id", help="the run's wfr_ ID")
    cancel = run_commands.add_parser("cancel", help="cancel a run and its children at the next step boundary")
    cancel.add_argument("run_id", help="the run's wfr_ ID")

    _ops_parsers(commands)

    demo = commands.add_parser(
        "demo", help="upload PDFs to a running service, show their analysis live, then the checklist"
    )
    demo.add_argument(
        "--url",
        help="the running service (default: PUBLIC_BASE_URL, else http://HOST:PORT, i.e. http://127.0.0.1:8000)",
    )
    demo.add_argument(
        "--documents", metavar="DIR", help="directory of PDFs to upload (default: tests/fixtures/documents)"
    )
    demo.add_argument(
        "--procedure",
        metavar="CODE",
        default="cabg",
        help="procedure code of the case (default: cabg; see GET /procedures)",
    )
    demo.add_argument("--token", metavar="T", help="ops token (default: ask POST /auth/dev-token, development only)")
    demo.add_argument(
        "--timeout", metavar="S", type=float, default=180.0, help="seconds to wait for the analyses (default 180)"
    )
    return parser


def _ops_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    events = commands.add_parser("events", help="a run's events, oldest first (from DATABASE_URL)")
    events.add_argument("workflow_id", nargs="?", help="the run's wfr_ ID")
    events.add_argument("--case", dest="case_id", help="the events of a case instead")
    events.add_argument("--document", dest="document_id", help="the events of a document instead")
    events.add_argument("--json", action="store_true", help="print JSON instead of a table")
    usage = commands.add_parser(
        "usage", help="QStash messages per day and workflow against the daily quota, and what inline continuation saved"
    )
    usage.add_argument("--days", type=int, default=14, help="how many days back, today included (default 14)")
    usage.add_argument("--json", action="store_true", help="print JSON instead of a table")
    dlq = commands.add_parser("dlq", help="dead letters: list and replay (QStash DLQ, webhook deliveries)")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True, metavar="SUBCOMMAND")
    dlq_list = dlq_commands.add_parser("list", help="the dead letters, newest first")
    dlq_list.add_argument("--json", action="store_true", help="print JSON instead of a table")
    replay = dlq_commands.add_parser("replay", help="send a dead letter again")
    replay.add_argument("dead_letter_id", help="the ID as listed (qstash:...)")


def _schedules_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    schedules = commands.add_parser(
        "schedules",
        help="sync the cron schedules declared in code to QStash, and list them",
        description=(
            "Cron schedules are declared in app/workflows/schedules.py (SCHEDULES). Each tick is delivered "
            "by QStash to PUBLIC_BASE_URL/schedules/<name> and starts one run of the schedule's workflow. "
            "These commands talk to QStash at QSTASH_URL (empty: the embedded server of the app serving "
            "at PUBLIC_BASE_URL, which must be running)."
        ),
    )
    subcommands = schedules.add_subparsers(dest="schedules_command", required=True, metavar="SUBCOMMAND")
    sync = subcommands.add_parser(
        "sync",
        help="upsert every declared schedule to QStash (by name) and delete ours that are no longer declared",
        description=(
            "Upsert every schedule of SCHEDULES to QStash under its name (Upstash-Schedule-Id), so running "
            "it twice changes nothing, then delete the schedules that target PUBLIC_BASE_URL/schedules/ "
            "under a name no longer declared. Prints one line per schedule upserted or deleted."
        ),
    )
    sync.add_argument(
        "--keep-undeclared", action="store_true", help="do not delete schedules of ours that are no longer declared"
    )
    listing = subcommands.add_parser(
        "list",
        help="the declared schedules: cron, zone, next fire time, last run's outcome, state in QStash",
        description=(
            "List the schedules declared in code with their cron, time zone, next fire time (computed "
            "from the cron), the outcome of their last run (DATABASE_URL) and their state in QStash "
            "(active, paused, or not synced; 'unknown' when QStash does not answer), then the schedules "
            "of ours QStash has that are no longer declared."
        ),
    )
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _jobs_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    jobs = commands.add_parser(
        "jobs",
        help="start a scheduled job now",
        description=(
            "Start one run of a declared schedule's job now, with the rule a cron tick follows: "
            "while a run of that job is unfinished, nothing starts and the skip is recorded on "
            "that run (exit status 1). The run is published to QSTASH_URL (empty: the embedded "
            "server of the app serving at PUBLIC_BASE_URL, which must be running)."
        ),
    )
    subcommands = jobs.add_subparsers(dest="jobs_command", required=True, metavar="SUBCOMMAND")
    run = subcommands.add_parser("run", help="start the job NAME now (see `curaway schedules list`)")
    run.add_argument("name", metavar="NAME", help="the schedule's name, e.g. stale-session-cleanup")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"curaway: settings refused:\n{settings_error_text(exc)}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return _serve(settings, args.host, args.port)
    if args.command == "migrate":
        from app.migrate import MigrationsNotFound, upgrade

        try:
            upgrade(settings.database_url, migrations_dir=settings.migrations_dir)
        except MigrationsNotFound as exc:
            print(f"curaway: {exc}", file=sys.stderr)
            return 2
        print(f"migrated {_safe_url(settings.database_url)}")
        return 0
    if args.command == "demo":
        from app.demo import DEFAULT_DOCUMENTS, DemoOptions, run_demo

        options = DemoOptions(
            url=args.url or settings.base_url,
            documents=args.documents or DEFAULT_DOCUMENTS,
            procedure=args.procedure,
            token=args.token,
            timeout_s=args.timeout,
        )
        return asyncio.run(run_demo(options))
    if args.command == "schedules":
        if args.schedules_command == "sync":
            return asyncio.run(_schedules_sync(settings, prune=not args.keep_undeclared))
        return asyncio.run(_schedules_list(settings, as_json=args.json))
    if args.command == "jobs":
        return asyncio.run(_jobs_run(settings, args.name))
    if args.command in ("events", "usage", "dlq"):
        return _ops_command(settings, args)
    if args.runs_command == "list":
        filters = {
            "workflow": args.workflow,
            "status": args.status,
            "case_id": args.case_id,
            "document_id": args.document_id,
            "cursor": args.cursor,
        }
        return asyncio.run(ops_cli.runs_list(settings, as_json=args.json, limit=args.limit, **filters))
    if args.runs_command == "show":
        return asyncio.run(ops_cli.runs_show(settings, args.run_id, as_json=args.json))
    return asyncio.run(_runs_control(settings, args.runs_command, args.run_id))


def _ops_command(settings: Settings, args: argparse.Namespace) -> int:
    if args.command == "events":
        if not (args.workflow_id or args.case_id or args.document_id):
            print("give a WORKFLOW_ID (or --case / --document)", file=sys.stderr)
            return 2
        keys = {"workflow_id": args.workflow_id, "case_id": args.case_id, "document_id": args.document_id}
        return asyncio.run(ops_cli.events(settings, as_json=args.json, **keys))
    if args.command == "usage":
        return asyncio.run(ops_cli.usage(settings, days=args.days, as_json=args.json))
    dead_letter_id = getattr(args, "dead_letter_id", None)
    return asyncio.run(_dlq(settings, args.dlq_command, dead_letter_id, as_json=getattr(args, "json", False)))


async def _dlq(settings: Settings, action: str, dead_letter_id: str | None, *, as_json: bool) -> int:
    """Both dead-letter sources through services of our own (QStash at QSTASH_URL, the database)."""
    from app.main import build_services
    from app.workflows import default_workflows

    services = build_services(settings, default_workflows())
    try:
        assert services.ops is not None
        return await ops_cli.dlq(services.ops.dead_letters, action, dead_letter_id, as_json=as_json)
    finally:
        await services.http.aclose()
        await services.engine.dispose()


async def _runs_control(settings: Settings, action: str, run_id: str) -> int:
    """Retry or cancel through a runtime of our own (publishing to QSTASH_URL)."""
    from app.errors import HTTPFacingError
    from app.main import build_services
    from app.workflows import default_workflows

    services = build_services(settings, default_workflows())
    try:
        if action == "retry":
            await services.runtime.resume(run_id)
            print(f"{run_id} resumed at the step that failed")
        else:
            cancelled = await services.runtime.cancel(run_id)
            print(f"cancelled {', '.join(cancelled)}" if cancelled else f"{run_id} had already finished")
        return 0
    except HTTPFacingError as exc:
        print(exc.detail, file=sys.stderr)
        return 1
    finally:
        await services.http.aclose()
        await services.engine.dispose()


async def _schedules_sync(settings: Settings, *, prune: bool) -> int:
    """Upsert the declared schedules to QSTASH_URL; print what was done."""
    from app.runtime.schedules import sync_schedules
    from app.runtime.transport import TransportError
    from app.workflows import default_workflows
    from app.workflows.schedules import SCHEDULES

    served = {workflow.name for workflow in default_workflows()}
    unknown = sorted({f"{s.name} -> {s.workflow}" for s in SCHEDULES if s.workflow not in served})
    if unknown:
        print(f"schedules target workflows the app does not serve: {', '.join(unknown)}", file=sys.stderr)
        return 1
    async with _qstash(settings) as qstash:
        try:
            results = await sync_schedules(qstash, SCHEDULES, settings.base_url, prune=prune)
        except TransportError as exc:
            print(f"sync failed: {exc}", file=sys.stderr)
            return 1
    if not results:
        print("no schedules declared, none to delete")
    for result in results:
        print(f"{result.action:<9} {result.name:<28} {result.cron:<32} -> {result.destination}")
    return 0


async def _schedules_list(settings: Settings, *, as_json: bool) -> int:
    """Print the declared schedules with their next fire time, last run and QStash state."""
    from app.runtime.transport import TransportError
    from app.workflows.schedules import SCHEDULES

    async with _qstash(settings) as qstash:
        try:
            synced: dict[str, dict[str, Any]] | None = {s["scheduleId"]: s for s in await qstash.list_schedules()}
        except TransportError as exc:
            print(f"QStash did not answer ({exc}); its state is shown as unknown", file=sys.stderr)
            synced = None
    last_runs = await _last_runs(settings, [schedule.name for schedule in SCHEDULES])
    now = datetime.now(UTC)
    rows = []
    for schedule in SCHEDULES:
        run = last_runs.get(schedule.name)
        state = "unknown" if synced is None else _qstash_state(synced.get(schedule.name))
        rows.append(
            {
                "name": schedule.name,
                "cron": schedule.cron,
                "timezone": schedule.timezone,
                "next_fire_at": schedule.parsed().next_after(now).isoformat(),
                "last_run": None
                if run is None
                else {"id": run.id, "status": run.status, "at": run.created_at.isoformat()},
                "qstash": state,
            }
        )
    prefix = f"{settings.base_url}/schedules/"
    declared = {schedule.name for schedule in SCHEDULES}
    for schedule_id, found in sorted((synced or {}).items()):
        if schedule_id not in declared and found.get("destination", "").startswith(prefix):
            next_ms = found.get("nextScheduleTime")
            rows.append(
                {
                    "name": schedule_id,
                    "cron": found.get("cron", ""),
                    "timezone": "-",
                    "next_fire_at": datetime.fromtimestamp(next_ms / 1000, UTC).isoformat() if next_ms else None,
                    "last_run": None,
                    "qstash": f"{_qstash_state(found)}, undeclared",
                }
            )
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'SCHEDULE':<24} {'CRON':<22} {'ZONE':<16} {'NEXT (UTC)':<19} {'LAST RUN':<30} QSTASH")
    for row in rows:
        last = row["last_run"]
        outcome = "-" if last is None else f"{last['status']} {last['at'][:16].replace('T', ' ')}"
        next_at = (row["next_fire_at"] or "-")[:19].replace("T", " ")
        print(f"{row['name']:<24} {row['cron']:<22} {row['timezone']:<16} {next_at:<19} {outcome:<30} {row['qstash']}")
    return 0


def _qstash_state(found: dict[str, Any] | None) -> str:
    if found is None:
        return "not synced"
    return "paused" if found.get("isPaused") else "active"


async def _last_runs(settings: Settings, names: list[str]) -> dict[str, WorkflowRun]:
    """The most recent run of each schedule (by `schedule_id`)."""
    from sqlalchemy.exc import SQLAlchemyError

    engine = create_engine(settings.database_url)
    try:
        async with session_factory(engine)() as session:
            runs = await session.scalars(
                select(WorkflowRun).where(WorkflowRun.schedule_id.in_(names)).order_by(WorkflowRun.created_at)
            )
            return {run.schedule_id or "": run for run in runs}
    except SQLAlchemyError as exc:
        print(f"could not read the last runs ({type(exc).__name__}; run `curaway migrate`?)", file=sys.stderr)
        return {}
    finally:
        await engine.dispose()


async def _jobs_run(settings: Settings, name: str) -> int:
    """Start the job of schedule `name` now, unless a run of it is unfinished."""
    from app.main import build_services
    from app.runtime.cron import TickOutcome, start_tick
    from app.workflows import default_workflows
    from app.workflows.schedules import SCHEDULES

    schedule = next((s for s in SCHEDULES if s.name == name), None)
    if schedule is None:
        print(f"no schedule named {name!r}; declared: {', '.join(s.name for s in SCHEDULES)}", file=sys.stderr)
        return 2
    services = build_services(settings, default_workflows())
    try:
        moment = datetime.now(UTC).replace(microsecond=0)
        started = await start_tick(services.runtime, schedule, moment, manual=True)
    finally:
        await services.http.aclose()
        await services.engine.dispose()
    if started.status == TickOutcome.SKIPPED:
        print(f"skipped: run {started.running_run_id} of {name} is unfinished (recorded on that run)")
        return 1
    print(f"{started.status.value} {schedule.workflow} run {started.run_id}")
    return 0


@asynccontextmanager
async def _qstash(settings: Settings) -> AsyncIterator[QStashClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0)) as http:
        yield QStashClient(settings.qstash_base_url, settings.qstash_token.get_secret_value(), http)


def _serve(settings: Settings, host: str | None, port: int | None) -> int:
    import uvicorn

    from app.logging import configure_logging
    from app.main import create_app

    overrides: dict[str, Any] = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    if overrides:
        settings = Settings(**overrides)
    configure_logging(settings.log_level, settings.effective_log_format)
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=settings.shutdown_grace_s,
    )
    return 0


def _safe_url(url: str) -> str:
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


if __name__ == "__main__":
    raise SystemExit(main())
