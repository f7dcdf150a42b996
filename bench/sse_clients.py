"""SSE clients for `document_pipeline.py`'s fan-out phase, run in a process of their own.

A patient's browser is not in the server's process: with the clients beside the server (the
fan-out's `--sse-clients-in-process`), their parsing takes the server's event loop and core, and
the figure is mostly the clients' work. Run here, the clients have a process (and, on two
cores, a core) of their own, and the figure is the server's fan-out plus one client's parse.

    BENCH_TOKEN=... python bench/sse_clients.py BASE_URL CASE_ID CLIENTS

Opens CLIENTS streams on `GET BASE_URL/cases/CASE_ID/events` (in batches of 100, so the listen
backlog keeps up), prints `connected` once every one of them has its response headers, then,
each time the last client has parsed an event, one line `event <id> <time.monotonic()>`. The
parent compares that time with its own `time.monotonic()` at the event's commit: on Linux both
read the same system-wide CLOCK_MONOTONIC. Runs until it is terminated, or a stream fails.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from app.config import HTTP_KEEPALIVE_S  # noqa: E402
from app.demo.stream import read_events  # noqa: E402

BATCH = 100


class Clients:
    """N streams on one case; `on_all(event_id, at)` when the last of them has parsed an event."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        path: str,
        headers: dict[str, str],
        n: int,
        on_all: Callable[[int, float], None],
    ) -> None:
        self._client, self._path, self._headers, self._n, self._on_all = client, path, headers, n, on_all
        self._counts: dict[int, int] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.connected = 0

    async def connect(self, timeout: float = 60) -> None:
        for start in range(0, self._n, BATCH):
            readies = [asyncio.Event() for _ in range(min(BATCH, self._n - start))]
            self.tasks.extend(asyncio.create_task(self._follow(ready)) for ready in readies)
            all_ready = asyncio.gather(*(ready.wait() for ready in readies))
            await asyncio.wait([all_ready, *self.tasks], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            all_ready.cancel()
            self.raise_failure()
            if not all(ready.is_set() for ready in readies):
                raise TimeoutError(f"{self.connected} of {self._n} SSE clients connected within {timeout:g} s")

    def raise_failure(self) -> None:
        for task in self.tasks:
            if task.done() and not task.cancelled() and task.exception():
                raise RuntimeError(f"an SSE client failed: {task.exception()!r}")

    async def _follow(self, ready: asyncio.Event) -> None:
        timeout = httpx.Timeout(30.0, read=None)
        async with self._client.stream("GET", self._path, headers=self._headers, timeout=timeout) as response:
            if response.status_code != 200:
                raise RuntimeError(f"{self._path} answered {response.status_code}")
            self.connected += 1
            ready.set()
            async for event in read_events(response):
                event_id = int(event.id)
                self._counts[event_id] = count = self._counts.get(event_id, 0) + 1
                if count == self._n:
                    self._on_all(event_id, time.monotonic())

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def client_for(base_url: str, n: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=n + 8, max_keepalive_connections=n + 8, keepalive_expiry=HTTP_KEEPALIVE_S)
    return httpx.AsyncClient(base_url=base_url, limits=limits, timeout=httpx.Timeout(120.0, connect=30.0))


async def main(base_url: str, case_id: str, n: int, token: str) -> None:
    def report(event_id: int, at: float) -> None:
        sys.stdout.write(f"event {event_id} {at!r}\n")
        sys.stdout.flush()

    headers = {"Authorization": f"Bearer {token}"}
    async with client_for(base_url, n) as client:
        clients = Clients(client, f"/cases/{case_id}/events", headers, n, report)
        try:
            await clients.connect()
            print("connected", flush=True)
            await asyncio.wait(clients.tasks, return_when=asyncio.FIRST_COMPLETED)  # until a stream fails or ends
            clients.raise_failure()
            raise RuntimeError("an SSE stream ended")
        finally:
            await clients.close()


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit("usage: BENCH_TOKEN=... python bench/sse_clients.py BASE_URL CASE_ID CLIENTS")
    try:
        asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), os.environ["BENCH_TOKEN"]))
    except (RuntimeError, TimeoutError) as exc:
        raise SystemExit(f"sse_clients: {exc}") from None
