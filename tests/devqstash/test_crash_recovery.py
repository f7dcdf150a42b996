"""A delivery whose server process was SIGKILLed mid-attempt is delivered again within seconds.

Everything here runs with the embedded server's shipped settings: no shortened claim lease,
delivery timeout, retry scale or poll interval. The destination is a real local HTTP server
that never answers the first request, so the dead process's attempt can never settle.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.config import DEV_QSTASH_TOKEN, Settings
from app.db import create_engine, session_factory
from app.devqstash.delivery import CLAIM_CHECK_INTERVAL_S, CLAIM_LEASE_S
from app.devqstash.models import QStashMessage
from tests.devqstash.support import Received, Recorder, eventually, running_qstash
from tests.support.live import serve
from tests.support.processes import free_port, start_server, stop, wait_healthy

pytestmark = pytest.mark.slow

# The embedded server's settings exactly as shipped (tests/support/service.py speeds some up).
SHIPPED = {
    name: Settings.model_fields[name].default
    for name in ("devqstash_retry_scale", "devqstash_poll_interval_s", "devqstash_delivery_timeout_s")
}
RECOVERY_BOUND_S = 60.0  # generous upper bound on a busy machine; the design recovers in seconds


@pytest.fixture
async def hanging_first() -> AsyncIterator[tuple[Recorder, asyncio.Event]]:
    """A destination that never answers its first request (until teardown) and answers 200 after."""
    teardown = asyncio.Event()

    async def respond(request: Received) -> Response:
        if len(recorder.requests) == 1:
            await teardown.wait()
        return Response("ok")

    recorder = Recorder(respond)
    async with serve(recorder.app):
        try:
            yield recorder, teardown
        finally:
            teardown.set()


async def publish(base_url: str, destination: str) -> str:
    headers = {"Authorization": f"Bearer {DEV_QSTASH_TOKEN}"}
    async with httpx.AsyncClient(base_url=f"{base_url}/qstash", headers=headers) as http:
        answer = await http.post(f"/v2/publish/{destination}", content=b"survives")
    assert answer.status_code == 201, answer.text
    return answer.json()["messageId"]


async def delivered(base_url: str, message_id: str) -> bool:
    headers = {"Authorization": f"Bearer {DEV_QSTASH_TOKEN}"}
    async with httpx.AsyncClient(base_url=f"{base_url}/qstash", headers=headers) as http:
        return await logged_delivered(http, message_id)


async def logged_delivered(http: httpx.AsyncClient, message_id: str) -> bool:
    """The server's event log has a DELIVERED entry for `message_id`."""
    page = await http.get("/v2/events", params={"messageId": message_id, "state": "DELIVERED"})
    return bool(page.json()["events"])


async def test_a_claim_of_a_sigkilled_process_is_delivered_again_soon_after_restart(
    database_url: str, tmp_path: Path, hanging_first: tuple[Recorder, asyncio.Event]
) -> None:
    receiver, _ = hanging_first
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    env = {"CURAWAY_TEST_SETTINGS": json.dumps(SHIPPED)}
    process = start_server(port, database_url, log, env=env)
    try:
        await wait_healthy(base_url, process, log)
        message_id = await publish(base_url, receiver.url("/hangs"))
        await receiver.wait_for(1, timeout=30)  # claimed, and in flight in the process we kill
        kill(process)

        process = start_server(port, database_url, log, env=env)
        await wait_healthy(base_url, process, log)
        first, second = await receiver.wait_for(2, timeout=RECOVERY_BOUND_S)
        await eventually(lambda: delivered(base_url, message_id), timeout=30)
    finally:
        stop(process)

    assert first.headers["upstash-message-id"] == second.headers["upstash-message-id"] == message_id
    assert (first.headers["upstash-retried"], second.headers["upstash-retried"]) == ("0", "1")
    assert second.body == b"survives"
    assert len(receiver.requests) == 2  # the message is settled: nothing more can come


def kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


async def test_a_live_delivery_longer_than_the_claim_lease_is_never_taken_over(database_url: str, receivers) -> None:
    """Two servers on one database; one holds a delivery far past its first lease: no second attempt."""
    release = asyncio.Event()

    async def hold(_: Received) -> Response:
        await asyncio.wait_for(release.wait(), timeout=RECOVERY_BOUND_S)
        return Response("ok")

    receiver = await receivers(hold)
    engine = create_engine(database_url)
    try:
        async with running_qstash(database_url) as one, running_qstash(database_url):
            published = await one.client.message.publish(url=receiver.url("/long"), body="once")
            await receiver.wait_for(1)
            first = await claim(engine, published.message_id)
            # Wait until the first lease would have lapsed and the other server has looked twice since.
            outlived = first[1] + timedelta(seconds=CLAIM_LEASE_S + 2 * CLAIM_CHECK_INTERVAL_S)

            async def renewed_past_first_lease() -> bool:
                token, until = await claim(engine, published.message_id)
                assert token == first[0], "the claim changed hands while its holder was delivering"
                return until >= outlived

            await eventually(renewed_past_first_lease, timeout=RECOVERY_BOUND_S)
            release.set()
            await eventually(lambda: logged_delivered(one.http, published.message_id))
    finally:
        await engine.dispose()

    assert [r.headers["upstash-retried"] for r in receiver.requests] == ["0"]


async def claim(engine: Any, message_id: str) -> tuple[str, datetime]:
    """The message's claim token and `claimed_until`, as stored."""
    async with session_factory(engine)() as session:
        row = (await session.execute(
            select(QStashMessage.claim_token, QStashMessage.claimed_until).where(QStashMessage.id == message_id)
        )).one()
    return row[0], row[1]


async def test_cancelling_a_message_in_flight_abandons_its_attempt(qstash) -> None:
    """The holder's next renewal finds the claim gone and drops the HTTP request it has open."""
    arrived, disconnected = asyncio.Event(), asyncio.Event()

    async def endpoint(request: Request) -> Response:
        arrived.set()
        async with asyncio.timeout(RECOVERY_BOUND_S):
            while not await request.is_disconnected():
                await asyncio.sleep(0.05)
        disconnected.set()
        return Response("too late")

    def build(_base_url: str) -> Starlette:
        return Starlette(routes=[Route("/never-answers", endpoint, methods=["POST"])])

    async with serve(build) as (destination, _):
        published = await qstash.client.message.publish(url=f"{destination}/never-answers", body="x")
        await asyncio.wait_for(arrived.wait(), 10)
        assert await qstash.client.message.cancel(published.message_id) is None
        await asyncio.wait_for(disconnected.wait(), RECOVERY_BOUND_S)

    page = await qstash.http.get("/v2/events", params={"messageId": published.message_id})
    assert [event["state"] for event in page.json()["events"]] == ["CANCELED", "CREATED"]
