"""When messages are delivered: delays, not-before, deduplication, cancellation, batches."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

from tests.devqstash.support import QStashServer


async def test_a_delayed_message_is_not_delivered_early(qstash: QStashServer, receivers):
    receiver = await receivers()
    started = time.time()

    await qstash.client.message.publish(url=receiver.url("/late"), body="x", delay="1s")

    await asyncio.sleep(0.5)
    assert receiver.requests == []
    [request] = await receiver.wait_for(1)
    assert request.at - started >= 1.0


async def test_not_before_wins_over_delay(qstash: QStashServer, receivers):
    receiver = await receivers()
    not_before = int(time.time() + 1.5)  # unix seconds: 0.5 to 1.5 s from now

    published = await qstash.client.message.publish(
        url=receiver.url("/nb"), body="x", delay="1h", not_before=not_before
    )

    message = await qstash.client.message.get(published.message_id)
    assert message.not_before == not_before * 1000
    [request] = await receiver.wait_for(1, timeout=5)
    assert request.at >= not_before


async def test_a_pending_message_is_served_in_qstash_shape(qstash: QStashServer, receivers):
    receiver = await receivers()

    published = await qstash.client.message.publish_json(
        url=receiver.url("/get"),
        body={"a": 1},
        delay="1h",
        retries=5,
        headers={"X-A": "1"},
        callback=receiver.url("/cb"),
        label="nightly",
    )

    message = await qstash.client.message.get(published.message_id)
    assert (message.url, message.body, message.method) == (receiver.url("/get"), '{"a": 1}', "POST")
    assert message.headers == {"X-A": ["1"], "Content-Type": ["application/json"]}
    assert (message.max_retries, message.callback, message.label) == (5, receiver.url("/cb"), "nightly")
    assert message.not_before - message.created_at == 3_600_000


async def test_the_same_deduplication_id_is_delivered_once(qstash: QStashServer, receivers):
    receiver = await receivers()
    url = receiver.url("/dedup")

    first = await qstash.publish(url, b"one", Upstash_Deduplication_Id="order-42")
    second = await qstash.publish(url, b"two", Upstash_Deduplication_Id="order-42")

    assert first.status_code == 201 and "deduplicated" not in first.json()
    assert second.status_code == 202
    assert second.json() == {"messageId": first.json()["messageId"], "deduplicated": True}
    [request] = await receiver.wait_for(1)
    await asyncio.sleep(0.3)
    assert len(receiver.requests) == 1 and request.body == b"one"


async def test_content_based_deduplication_compares_content_case_insensitively(qstash: QStashServer, receivers):
    receiver = await receivers()
    url = receiver.url("/content")

    first = await qstash.client.message.publish(url=url, body="same", content_based_deduplication=True)
    again = await qstash.publish(url, b"same", Upstash_Content_Based_Deduplication="true")
    other = await qstash.client.message.publish(url=url, body="different", content_based_deduplication=True)

    assert again.json() == {"messageId": first.message_id, "deduplicated": True}
    assert not other.deduplicated
    await receiver.wait_for(2)
    await asyncio.sleep(0.3)
    assert sorted(r.body for r in receiver.requests) == [b"different", b"same"]


async def test_a_cancelled_delayed_message_is_never_delivered(qstash: QStashServer, receivers):
    receiver = await receivers()

    published = await qstash.client.message.publish(url=receiver.url("/c"), body="x", delay="600ms")
    await qstash.client.message.cancel(published.message_id)

    assert (await qstash.http.get(f"/v2/messages/{published.message_id}")).status_code == 404
    assert (await qstash.http.delete(f"/v2/messages/{published.message_id}")).status_code == 404
    await asyncio.sleep(0.9)
    assert receiver.requests == []


async def test_cancel_many_and_cancel_all(qstash: QStashServer, receivers):
    receiver = await receivers()
    ids = [
        (await qstash.client.message.publish(url=receiver.url(f"/{n}"), body="x", delay="1h")).message_id
        for n in range(4)
    ]

    assert await qstash.client.message.cancel_many([ids[0], ids[1], "msg_unknown"]) == 2
    assert await qstash.client.message.cancel_all() == 2
    assert await qstash.client.message.cancel_all() == 0


async def test_a_batch_is_published_in_order(qstash: QStashServer, receivers):
    receiver = await receivers()

    results = await qstash.client.message.batch_json(
        [
            {"url": receiver.url("/b1"), "body": {"n": 1}, "headers": {"X-N": "1"}},
            {"url": receiver.url("/b2"), "body": {"n": 2}, "queue": "reports"},
            {"url": receiver.url("/b3"), "body": {"n": 3}, "deduplication_id": "b"},
            {"url": receiver.url("/b3"), "body": {"n": 4}, "deduplication_id": "b"},
        ]
    )

    assert [r.deduplicated for r in results] == [False, False, False, True]
    assert results[3].message_id == results[2].message_id
    requests = await receiver.wait_for(3)
    by_path = {r.url.removeprefix(receiver.base_url): r for r in requests}
    assert set(by_path) == {"/b1", "/b2", "/b3"}
    assert json.loads(by_path["/b1"].body) == {"n": 1} and by_path["/b1"].headers["x-n"] == "1"
    assert by_path["/b2"].headers["upstash-message-id"] == results[1].message_id

    usage = await qstash.devq.usage_per_day(since=qstash.devq.now() - timedelta(days=1))
    today = qstash.devq.now().date().isoformat()
    assert usage == [{"day": today, "destination": receiver.url(p), "messages": 1} for p in ("/b1", "/b2", "/b3")]


async def test_a_batch_with_an_invalid_item_stores_nothing(qstash: QStashServer, receivers):
    receiver = await receivers()
    items = [
        {"destination": receiver.url("/ok"), "headers": {}, "body": "fine"},
        {"destination": receiver.url("/bad"), "headers": {"Upstash-Delay": "whenever"}, "body": "x"},
    ]

    response = await qstash.http.post("/v2/batch", json=items)
    not_a_list = await qstash.http.post("/v2/batch", json={"destination": receiver.url("/ok")})

    assert response.status_code == 400 and "batch item 1" in response.json()["error"]
    assert not_a_list.status_code == 400
    await asyncio.sleep(0.3)
    assert receiver.requests == []
    assert await qstash.client.message.cancel_all() == 0


async def test_enqueue_delivers_and_records_the_queue(qstash: QStashServer, receivers):
    receiver = await receivers()

    published = await qstash.client.message.enqueue_json(queue="emails", url=receiver.url("/q"), body={"q": 1})

    [request] = await receiver.wait_for(1)
    assert request.headers["upstash-message-id"] == published.message_id
    events = (await qstash.http.get("/v2/events", params={"messageId": published.message_id})).json()["events"]
    assert [e["state"] for e in events][-1] == "CREATED" and events[-1]["queueName"] == "emails"
