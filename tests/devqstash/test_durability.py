"""Durability: messages survive restarts, abandoned deliveries are redelivered, claims are exclusive."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

from starlette.responses import Response

from app.db import create_engine, session_factory, transaction
from app.devqstash import store
from tests.devqstash.support import Received, eventually, running_qstash


async def test_a_delayed_message_is_delivered_by_a_new_server_after_a_restart(database_url, receivers):
    receiver = await receivers()

    async with running_qstash(database_url) as first:
        published = await first.client.message.publish(url=receiver.url("/later"), body="kept", delay="1s")

    async with running_qstash(database_url) as second:
        [request] = await receiver.wait_for(1, timeout=5)
        assert (request.body, request.headers["upstash-message-id"]) == (b"kept", published.message_id)
        assert (await second.client.message.cancel_all()) == 0


async def test_a_delivery_in_flight_at_stop_is_delivered_again_after_restart(database_url, receivers):
    release = asyncio.Event()

    async def hang_first(request: Received) -> Response:
        if len(receiver.requests) == 1:
            await asyncio.wait_for(release.wait(), timeout=5)
        return Response("ok")

    receiver = await receivers(hang_first)

    async with running_qstash(database_url) as first:
        published = await first.client.message.publish(url=receiver.url("/slow"), body="again")
        await receiver.wait_for(1)  # in flight, never answered: the server stops now

    async with running_qstash(database_url):
        first_try, second_try = await receiver.wait_for(2, timeout=5)
    release.set()

    assert first_try.headers["upstash-message-id"] == second_try.headers["upstash-message-id"] == published.message_id
    assert second_try.body == b"again"
    assert second_try.headers["upstash-retried"] == "0"  # an abandoned attempt is not a failed one


async def test_a_claim_left_by_a_dead_process_is_taken_over_as_a_failed_attempt(database_url, receivers):
    receiver = await receivers()
    async with running_qstash(database_url) as server:
        await server.devq.stop()  # only the REST side runs; the "dead process" claims below
        published = await server.client.message.publish(url=receiver.url("/orphan"), body="x")
        engine = create_engine(database_url)
        async with transaction(session_factory(engine)) as session:
            now = server.devq.now()
            claimed = await store.claim_due(
                session, now=now, limit=10, token="clm_dead", claimed_until=now - timedelta(seconds=1)
            )
        await engine.dispose()
        assert [m.id for m in claimed] == [published.message_id]

        await server.devq.start()
        [request] = await receiver.wait_for(1)

    assert request.headers["upstash-message-id"] == published.message_id
    assert request.headers["upstash-retried"] == "1"


async def test_two_servers_on_one_database_deliver_each_message_once(database_url, receivers):
    receiver = await receivers(lambda _r: Response("ok"))

    async with running_qstash(database_url) as one, running_qstash(database_url, concurrency=4) as two:
        items = [{"url": receiver.url(f"/m{n}"), "body": str(n), "delay": "300ms"} for n in range(30)]
        results = await one.client.message.batch(items)
        await receiver.wait_for(30)

        async def all_settled() -> bool:
            page = await two.http.get("/v2/events", params={"state": "DELIVERED"})
            return len(page.json()["events"]) == 30

        await eventually(all_settled)
        await asyncio.sleep(0.2)  # a duplicate delivery would have had time to arrive

    counts = Counter(r.headers["upstash-message-id"] for r in receiver.requests)
    assert set(counts) == {r.message_id for r in results}
    assert set(counts.values()) == {1}
