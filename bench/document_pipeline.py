"""Document pipeline: uploads through the HTTP API to `document.analyzed`, and SSE fan-out.

Full path: `POST /cases/{id}/documents` (multipart) -> document-analysis run published to the
embedded QStash -> signed deliveries over real HTTP -> confirm-upload, ocr, clinical-extract,
fhir-validate, embedding-match, ehr-rebuild, sse-notify -> the `document.analyzed` event read
by an SSE client on `GET /cases/{id}/events`. Fresh migrated SQLite or Postgres database, the
service served by uvicorn in this process, the offline extractor and the local embedding model.

1. Throughput and latency: `--uploads` uploads of the fixture documents that analyse
   (tests/fixtures/documents, `expect: analyzed`), cycling through them, spread over `--cases`
   cases with one SSE listener per case, at most `--concurrency` documents in analysis at once.
   Latency is from the upload's 202 response to its `document.analyzed` event on the stream.
   One warm-up document (not counted) runs first, so the embedding model is loaded.
2. QStash messages per document: `qstash_events` rows in state CREATED for the
   document-analysis workflow during phase 1, divided by the uploads.
3. SSE fan-out: `--sse-clients` clients on one case's stream (one connection each); one
   progress event is inserted (`record_event` in a transaction) and the time from its commit to
   the moment the last client has it is measured, `--fanout-repeats` times, each inserted at a
   random point of the feed's poll cycle. The commit wakes the progress feed at once (no poll
   wait; on Postgres no settle delay unless a straggler leaves a gap in the IDs), so this is
   the server's writes to all clients and their parsing. The clients run in a process of their
   own (`bench/sse_clients.py`), as browsers do; `--sse-clients-in-process` runs them here.

Prints a summary and, as its last line, one JSON object with documents_per_min,
latency_ms_p50, latency_ms_p95, messages_per_document, sse_fanout_ms_p50, sse_fanout_ms_p95,
sse_fanout_ms_max.

    .venv/bin/python bench/document_pipeline.py --db sqlite --uploads 200 --cases 10 --sse-clients 500
    .venv/bin/python bench/document_pipeline.py --uploads 20 --sse-clients 50          # smoke run
    .venv/bin/python bench/document_pipeline.py --db postgres --dsn postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from app.config import HTTP_KEEPALIVE_S, PROJECT_ROOT  # noqa: E402
from app.db import transaction  # noqa: E402
from app.demo.stream import read_events  # noqa: E402
from app.devqstash.models import EventState, QStashEvent  # noqa: E402
from app.documents.models import Document  # noqa: E402
from app.main import create_app  # noqa: E402
from app.runtime.events import record_event  # noqa: E402
from app.serving import serve_in_loop  # noqa: E402
from bench.sse_clients import Clients  # noqa: E402
from bench.support import bench_settings, fresh_database  # noqa: E402

FIXTURES = PROJECT_ROOT / "tests" / "fixtures" / "documents"
TERMINAL = {"document.analyzed", "document.needs_ocr", "document.analysis_failed"}
FINAL_STATUSES = {"analyzed", "needs_ocr", "failed"}
LOST_CHECK_S = 5.0  # how often the uploads phase checks its streams against the database
PROBE = "document.bench_probe"  # a progress event (the feed serves `document.*`) no pipeline writes


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--dsn",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="Postgres server for --db postgres (a scratch database is created on it)",
    )
    parser.add_argument("--uploads", type=int, default=200, help="documents to upload (default 200)")
    parser.add_argument(
        "--cases", type=int, default=10, help="cases the uploads are spread over, one SSE listener each (default 10)"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="documents in analysis at once (default 16)")
    parser.add_argument(
        "--sse-clients", type=int, default=500, help="SSE clients on one case's stream for the fan-out (default 500)"
    )
    parser.add_argument(
        "--fanout-repeats", type=int, default=10, help="events delivered to all SSE clients, one at a time (default 10)"
    )
    parser.add_argument(
        "--sse-clients-in-process", action="store_true",
        help="run the fan-out's SSE clients in this process, beside the server (as before 2026-12-03 round 5), not in bench/sse_clients.py",
    )  # fmt: skip
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="seconds allowed for the uploads phase (default 900)"
    )
    args = parser.parse_args(argv)
    for name in ("uploads", "cases", "concurrency", "sse_clients", "fanout_repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def _raise_file_limit(wanted: int) -> int:
    """Two sockets per SSE client live in this process (client and server side): raise the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def _analyzable() -> list[tuple[str, bytes]]:
    expected = json.loads((FIXTURES / "expected.json").read_text())
    names = sorted(n for n, want in expected.items() if isinstance(want, dict) and want.get("expect") == "analyzed")
    return [(name, (FIXTURES / name).read_bytes()) for name in names]


async def _sse(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The JSON `data:` of each event on a server-sent-events response (pings skipped)."""
    async for event in read_events(response):
        yield event.json()


@dataclass
class Outcomes:
    """Terminal events by document ID; an uploader waits on its document's future."""

    futures: dict[str, asyncio.Future[tuple[str, float, dict[str, Any]]]] = field(default_factory=dict)
    events: int = 0

    def future(self, document_id: str) -> asyncio.Future[tuple[str, float, dict[str, Any]]]:
        if document_id not in self.futures:
            self.futures[document_id] = asyncio.get_running_loop().create_future()
        return self.futures[document_id]

    def seen(self, event: dict[str, Any], at: float) -> None:
        document_id = event.get("document_id")
        if event.get("type") in TERMINAL and document_id:
            future = self.future(document_id)
            if not future.done():
                future.set_result((event["type"], at, event.get("payload") or {}))


class Api:
    def __init__(self, client: httpx.AsyncClient, ops_token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {ops_token}"}

    async def new_case(self, i: int) -> str:
        patient = await self.client.post(
            "/patients", json={"name": f"Bench Patient {i}", "email": f"bench{i}@example.org"}, headers=self.headers
        )
        patient.raise_for_status()
        case = await self.client.post(
            "/cases", json={"patient_id": patient.json()["id"], "procedure": "cabg"}, headers=self.headers
        )
        case.raise_for_status()
        return case.json()["id"]

    @contextlib.asynccontextmanager
    async def stream(self, case_id: str) -> AsyncIterator[httpx.Response]:
        async with self.client.stream(
            "GET", f"/cases/{case_id}/events", headers=self.headers, timeout=httpx.Timeout(30.0, read=None)
        ) as response:
            if response.status_code != 200:
                raise BenchError(f"SSE stream of {case_id} answered {response.status_code}")
            yield response

    async def upload(self, case_id: str, name: str, data: bytes) -> str:
        response = await self.client.post(
            f"/cases/{case_id}/documents", files={"file": (name, data, "application/pdf")}, headers=self.headers
        )
        if response.status_code != 202:
            raise BenchError(f"upload of {name} answered {response.status_code}: {response.text}")
        return response.json()["document_id"]


class BenchError(Exception):
    """The benchmark cannot give figures; the message says why."""


async def _listen(api: Api, case_id: str, outcomes: Outcomes, ready: asyncio.Event) -> None:
    async with api.stream(case_id) as response:
        ready.set()
        async for event in _sse(response):
            outcomes.events += 1
            outcomes.seen(event, time.perf_counter())


async def _messages(sessions: Any) -> int:
    async with sessions() as session:
        return await session.scalar(
            select(func.count())
            .select_from(QStashEvent)
            .where(QStashEvent.state == EventState.CREATED, QStashEvent.url.like("%/workflows/document-analysis"))
        )


async def _statuses(sessions: Any, document_ids: list[str]) -> dict[str, str]:
    async with sessions() as session:
        rows = await session.execute(select(Document.id, Document.status).where(Document.id.in_(document_ids)))
        return {document_id: status for document_id, status in rows}


async def _watch(
    sessions: Any,
    outcomes: Outcomes,
    pending: dict[str, str],
    listeners: list[asyncio.Task[None]],
    progress: Callable[[], str],
) -> None:
    """Every few seconds: a progress note, and a check that the streams miss nothing.

    A document that the database shows finished for two checks in a row without its final
    event on the case's stream means the stream lost an event: fail with that, not a hang.
    """
    finished_unseen: set[str] = set()
    while True:
        await asyncio.sleep(LOST_CHECK_S)
        for task in listeners:
            if task.done():
                error = None if task.cancelled() else task.exception()
                raise BenchError(f"an SSE listener ended: {error!r}")
        waiting = [d for d in pending if not outcomes.future(d).done()]
        statuses = await _statuses(sessions, waiting) if waiting else {}
        now_unseen = {d for d, status in statuses.items() if status in FINAL_STATUSES and not outcomes.future(d).done()}
        lost = now_unseen & finished_unseen
        if lost:
            raise BenchError(
                f"{len(lost)} document(s) finished in the database but their final event never arrived on the "
                f"case's SSE stream after {LOST_CHECK_S:g}+ s ({', '.join(sorted(lost)[:5])}); "
                f"{outcomes.events} events received: the progress feed (app/cases/progress.py) lost events"
            )
        finished_unseen = now_unseen
        _note(f"{progress()}, {outcomes.events} progress events received")


async def _uploads_phase(api: Api, sessions: Any, args: argparse.Namespace) -> dict[str, Any]:
    documents = _analyzable()
    outcomes = Outcomes()
    cases = [await api.new_case(i) for i in range(args.cases + 1)]
    warm_case, cases = cases[0], cases[1:]
    listeners, readies = [], []
    for case_id in [warm_case, *cases]:
        ready = asyncio.Event()
        readies.append(ready)
        listeners.append(asyncio.create_task(_listen(api, case_id, outcomes, ready)))
    pending: dict[str, str] = {}  # document ID -> file name, for every upload
    gate = asyncio.Semaphore(args.concurrency)
    latencies: list[float] = []
    failures: list[str] = []
    finished_at: list[float] = []

    async def one(case_id: str, name: str, data: bytes, *, counted: bool = True) -> None:
        async with gate:
            document_id = await api.upload(case_id, name, data)
            accepted = time.perf_counter()
            pending[document_id] = name
            kind, at, payload = await outcomes.future(document_id)
        if kind != "document.analyzed":
            failures.append(f"{name} ({document_id}): {kind} {payload.get('reason', '')}")
        elif counted:
            finished_at.append(at)
            latencies.append(max(at - accepted, 0.0) * 1000)

    async def run(work: Any, what: str) -> None:
        task = asyncio.ensure_future(work)
        progress = lambda: f"{what}: {len(finished_at)}/{args.uploads} documents finished"  # noqa: E731
        watcher = asyncio.create_task(_watch(sessions, outcomes, pending, listeners, progress))
        try:
            done, _ = await asyncio.wait({task, watcher}, timeout=args.timeout, return_when=asyncio.FIRST_COMPLETED)
            if watcher in done:
                watcher.result()  # raises
            if task not in done:
                raise BenchError(
                    f"{what}: timed out after {args.timeout:g}s, {len(finished_at)} of {args.uploads} finished"
                )
            task.result()
        finally:
            for t in (task, watcher):
                t.cancel()
            await asyncio.gather(task, watcher, return_exceptions=True)
        if failures:
            raise BenchError(f"{len(failures)} document(s) did not reach analyzed:\n  " + "\n  ".join(failures[:10]))

    try:
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), timeout=30)
        # Warm-up (not counted): loads the OCR and embedding code paths and the model.
        await run(one(warm_case, *documents[0], counted=False), "warm-up")
        messages_before = await _messages(sessions)
        started = time.perf_counter()
        uploads = [one(cases[i % len(cases)], *documents[i % len(documents)]) for i in range(args.uploads)]
        await run(asyncio.gather(*uploads), "uploads")
        elapsed = max(finished_at) - started
        messages = await _messages(sessions) - messages_before
    finally:
        for task in listeners:
            task.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
    return {"elapsed": elapsed, "latencies": latencies, "messages": messages}


class Arrivals:
    """When the last SSE client parsed each event (`time.monotonic()`), from wherever the clients run."""

    def __init__(self) -> None:
        self._futures: dict[int, asyncio.Future[float]] = {}
        self._failure: BaseException | None = None

    def _future(self, event_id: int) -> asyncio.Future[float]:
        return self._futures.setdefault(event_id, asyncio.get_running_loop().create_future())

    def arrived(self, event_id: int, at: float) -> None:
        self._future(event_id).set_result(at)

    def fail(self, error: BaseException) -> None:
        """The clients stopped (`error` says why): every wait, now or later, raises it at once."""
        self._failure = error
        for future in self._futures.values():
            if not future.done():
                future.set_exception(error)

    async def wait(self, event_id: int) -> float:
        if self._failure is not None:
            raise self._failure
        return await asyncio.wait_for(asyncio.shield(self._future(event_id)), timeout=60)


@contextlib.asynccontextmanager
async def _clients_in_process(api: Api, case_id: str, n: int, arrivals: Arrivals) -> AsyncIterator[None]:
    clients = Clients(api.client, f"/cases/{case_id}/events", api.headers, n, arrivals.arrived)

    async def watch() -> None:  # a stream that fails or ends fails the probes waiting on it at once
        await asyncio.wait(clients.tasks, return_when=asyncio.FIRST_COMPLETED)
        try:
            clients.raise_failure()
            arrivals.fail(BenchError("an SSE stream ended"))
        except RuntimeError as error:
            arrivals.fail(error)

    watcher = None
    try:
        await clients.connect()
        watcher = asyncio.create_task(watch())
        yield
        clients.raise_failure()
    finally:
        if watcher is not None:
            watcher.cancel()
        await clients.close()


@contextlib.asynccontextmanager
async def _clients_process(api: Api, case_id: str, n: int, arrivals: Arrivals) -> AsyncIterator[None]:
    """`bench/sse_clients.py` in a child process, its `event` lines read into `arrivals`."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).with_name("sse_clients.py")), str(api.client.base_url), case_id, str(n),
        env={**os.environ, "BENCH_TOKEN": api.headers["Authorization"].removeprefix("Bearer ")},
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert child.stdout is not None
    connected = asyncio.Event()

    async def read() -> None:
        async for line in child.stdout:  # type: ignore[union-attr]
            match line.decode().split():
                case ["connected"]:
                    connected.set()
                case ["event", event_id, at]:
                    arrivals.arrived(int(event_id), float(at))
        error = BenchError(f"bench/sse_clients.py exited with {await child.wait()}")
        arrivals.fail(error)  # the probes waiting for its clients fail now, not after their 60 s
        raise error

    reader = asyncio.create_task(read())
    try:
        await asyncio.wait(
            [reader, asyncio.ensure_future(connected.wait())], timeout=90, return_when=asyncio.FIRST_COMPLETED
        )
        if reader.done():
            reader.result()
        if not connected.is_set():
            raise BenchError(f"bench/sse_clients.py did not connect its {n} clients within 90 s")
        yield
        if reader.done():
            reader.result()
    finally:
        reader.cancel()
        if child.returncode is None:
            child.terminate()
        await child.wait()


async def _fanout_phase(api: Api, sessions: Any, args: argparse.Namespace, poll_s: float) -> list[float]:
    case_id = await api.new_case(10_000_000)
    arrivals = Arrivals()
    clients = _clients_in_process if args.sse_clients_in_process else _clients_process

    async def probe() -> float:
        """One progress event: ms from its commit until the last client parsed it."""
        async with transaction(sessions) as session:
            event = record_event(session, PROBE, case_id=case_id, payload={"probe": True})
            await session.flush()
            event_id = event.id
        committed = time.monotonic()
        try:
            return (await arrivals.wait(event_id) - committed) * 1000
        except TimeoutError:
            raise BenchError(
                f"SSE fan-out: probe event {event_id} did not reach all {args.sse_clients} clients within 60 s"
            ) from None

    async with clients(api, case_id, args.sse_clients, arrivals):
        await probe()  # warm-up: proves every client is subscribed to the feed
        fanouts = []
        for _ in range(args.fanout_repeats):
            # Right after a delivery the feed has just polled: insert at a random point of its
            # poll cycle, as a real event would, not always a whole interval before the next poll.
            await asyncio.sleep(random.uniform(0, poll_s))
            fanouts.append(await probe())
        return fanouts


def _note(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = _parse(argv)
    connections = args.sse_clients + args.cases + args.concurrency + 64
    files = _raise_file_limit(2 * connections + 512)
    if files < 2 * connections + 128:
        print(
            f"warning: only {files} file descriptors allowed; {args.sse_clients} SSE clients may not fit",
            file=sys.stderr,
        )
    with tempfile.TemporaryDirectory(prefix="curaway-bench-storage-") as storage:
        async with fresh_database(args.db, args.dsn) as database_url:

            def build(base_url: str) -> Any:
                return create_app(bench_settings(database_url, base_url, storage_dir=Path(storage)))

            async with serve_in_loop(build) as (base_url, app):
                services = app.state.services
                limits = httpx.Limits(
                    max_connections=connections,
                    max_keepalive_connections=connections,
                    keepalive_expiry=HTTP_KEEPALIVE_S,
                )
                async with httpx.AsyncClient(
                    base_url=base_url, limits=limits, timeout=httpx.Timeout(120.0, connect=30.0)
                ) as client:
                    api = Api(client, services.settings.ops_token.get_secret_value())
                    uploads = await _uploads_phase(api, services.sessions, args)
                    _note(f"uploads phase done in {uploads['elapsed']:.1f}s; connecting {args.sse_clients} SSE clients")
                    fanouts = await _fanout_phase(api, services.sessions, args, services.settings.progress_poll_s)
    latencies = uploads["latencies"]
    figures = {
        "db": args.db,
        "uploads": args.uploads,
        "cases": args.cases,
        "concurrency": args.concurrency,
        "sse_clients": args.sse_clients,
        "seconds": round(uploads["elapsed"], 3),
        "documents_per_min": round(args.uploads / uploads["elapsed"] * 60, 2),
        "latency_ms_p50": round(_percentile(latencies, 50), 1),
        "latency_ms_p95": round(_percentile(latencies, 95), 1),
        "messages_per_document": round(uploads["messages"] / args.uploads, 3),
        "sse_fanout_ms_p50": round(statistics.median(fanouts), 1),
        "sse_fanout_ms_p95": round(statistics.quantiles(fanouts, n=20, method="inclusive")[-1], 1),
        "sse_fanout_ms_max": round(max(fanouts), 1),
    }
    print(
        f"{args.uploads} uploads over {args.cases} cases on {args.db} ({args.concurrency} in analysis at once): "
        f"{figures['documents_per_min']} documents/min, upload-to-analyzed p50 {figures['latency_ms_p50']} ms / "
        f"p95 {figures['latency_ms_p95']} ms, {figures['messages_per_document']} QStash messages per document"
    )
    print(
        f"one event to {args.sse_clients} SSE clients: p50 {figures['sse_fanout_ms_p50']} ms, "
        f"p95 {figures['sse_fanout_ms_p95']} ms, "
        f"max {figures['sse_fanout_ms_max']} ms over {args.fanout_repeats} events"
    )
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except BenchError as exc:
        raise SystemExit(f"document_pipeline: {exc}") from None
