"""Failed deliveries: retries with backoff, callbacks, the DLQ and failure callbacks."""

from __future__ import annotations

import base64

from starlette.responses import Response

from tests.devqstash.support import QStashServer, Received


def always(status: int, **headers: str):
    return lambda _request: Response("nope", status_code=status, headers=headers)


async def test_a_failing_destination_is_retried_then_dead_lettered_with_callbacks(qstash: QStashServer, receivers):
    target = await receivers(always(500))
    callbacks = await receivers()
    failures = await receivers()

    published = await qstash.client.message.publish(
        url=target.url("/flaky"),
        body="payload",
        retries=2,
        callback=callbacks.url("/cb"),
        failure_callback=failures.url("/failed"),
        headers={"X-Source": "test"},
    )

    attempts = await target.wait_for(3)
    [failure] = await failures.wait_for(1)
    per_attempt = await callbacks.wait_for(3)
    assert [a.headers["upstash-retried"] for a in attempts] == ["0", "1", "2"]
    assert {a.headers["upstash-message-id"] for a in attempts} == {published.message_id}

    dead = (await qstash.client.dlq.list()).messages
    assert [m.message_id for m in dead] == [published.message_id]
    entry = dead[0]
    assert (entry.response_status, entry.response_body, entry.url) == (500, "nope", target.url("/flaky"))
    assert entry.body == "payload" and entry.max_retries == 2

    body = failure.json()
    assert body["dlqId"] == entry.dlq_id
    assert (body["status"], body["sourceMessageId"], body["url"]) == (500, published.message_id, target.url("/flaky"))
    assert base64.b64decode(body["body"]) == b"nope"
    assert base64.b64decode(body["sourceBody"]) == b"payload"
    assert body["sourceHeader"]["X-Source"] == ["test"]
    assert failure.headers["upstash-signature"]

    retried = sorted(c.json()["retried"] for c in per_attempt)
    assert retried == [0, 1, 2]
    assert all(c.json()["maxRetries"] == 2 and c.json()["status"] == 500 for c in per_attempt)
    assert len(target.requests) == 3  # nothing after the DLQ


async def test_callback_configuration_headers_configure_the_callback_message(qstash: QStashServer, receivers):
    target = await receivers()
    callbacks = await receivers()

    await qstash.publish(
        target.url("/ok"),
        b"hello",
        Upstash_Callback=callbacks.url("/cb"),
        Upstash_Callback_Forward_X_Callback_Secret="s3",
        Upstash_Callback_Method="PUT",
    )

    [callback] = await callbacks.wait_for(1)
    assert callback.method == "PUT"
    assert callback.headers["x-callback-secret"] == "s3"
    assert callback.headers["content-type"] == "application/json"
    body = callback.json()
    assert (body["status"], body["retried"], base64.b64decode(body["body"])) == (200, 0, b"ok")
    assert base64.b64decode(body["sourceBody"]) == b"hello"


async def test_retry_delay_expression_replaces_the_backoff(qstash: QStashServer, receivers):
    target = await receivers(always(500))

    await qstash.publish(target.url("/x"), b"x", Upstash_Retries="2", Upstash_Retry_Delay="200 * (retried + 1)")

    first, second, third = await target.wait_for(3)
    assert second.at - first.at >= 0.2  # the scaled default backoff would be 12 ms
    assert third.at - second.at >= 0.4  # and 148 ms


async def test_non_retryable_489_goes_to_the_dlq_after_one_attempt(qstash: QStashServer, receivers):
    target = await receivers(always(489, **{"Upstash-NonRetryable-Error": "true"}))

    response = await qstash.publish(target.url("/x"), b"x", Upstash_Retries="3")

    [attempt] = await target.wait_for(1)
    assert attempt.headers["upstash-retried"] == "0"
    entry = await _wait_for_dlq(qstash)
    assert (entry["messageId"], entry["responseStatus"]) == (response.json()["messageId"], 489)
    assert len(target.requests) == 1


async def test_retry_after_of_a_429_sets_the_delay(qstash: QStashServer, receivers):
    calls: list[Received] = []

    def respond(request: Received) -> Response:
        calls.append(request)
        if len(calls) == 1:
            return Response("slow down", status_code=429, headers={"Retry-After": "1"})
        return Response("ok")

    target = await receivers(respond)

    await qstash.publish(target.url("/x"), b"x")

    first, second = await target.wait_for(2)
    assert second.at - first.at >= 1.0
    assert second.headers["upstash-retried"] == "1"


async def test_dlq_entries_can_be_fetched_retried_and_deleted(qstash: QStashServer, receivers):
    answers = iter([500, 500, 200])
    target = await receivers(lambda _r: Response("x", status_code=next(answers)))

    for path in ("/a", "/b"):
        await qstash.publish(target.url(path), path.encode(), Upstash_Retries="0")
    await target.wait_for(2)
    listing = await _wait_for_dlq(qstash, count=2, whole=True)
    first, second = listing["messages"]

    page = (await qstash.http.get("/v2/dlq", params={"count": 1})).json()
    assert [m["dlqId"] for m in page["messages"]] == [first["dlqId"]]
    rest = (await qstash.http.get("/v2/dlq", params={"cursor": page["cursor"]})).json()
    assert [m["dlqId"] for m in rest["messages"]] == [second["dlqId"]] and "cursor" not in rest
    # Two entries of the same millisecond list in either order: find each by its URL.
    a, b = (next(m for m in listing["messages"] if m["url"] == target.url(path)) for path in ("/a", "/b"))
    filtered = (await qstash.http.get("/v2/dlq", params={"url": target.url("/b")})).json()
    assert [m["dlqId"] for m in filtered["messages"]] == [b["dlqId"]]
    assert (await qstash.client.dlq.get(a["dlqId"])).url == target.url("/a")

    retried = await qstash.http.post(f"/v2/dlq/retry/{a['dlqId']}")
    assert retried.status_code == 201
    [*_, redelivered] = await target.wait_for(3)
    assert redelivered.body == b"/a" and redelivered.headers["upstash-message-id"] == retried.json()["messageId"]

    deleted = await qstash.client.dlq.delete_many([b["dlqId"], "0-unknown"])
    assert deleted == 1
    assert (await qstash.http.get("/v2/dlq")).json() == {"messages": []}
    assert (await qstash.http.get(f"/v2/dlq/{a['dlqId']}")).status_code == 404


async def _wait_for_dlq(qstash: QStashServer, *, count: int = 1, whole: bool = False):
    from tests.devqstash.support import eventually

    async def listing():
        page = (await qstash.http.get("/v2/dlq")).json()
        return page if len(page["messages"]) >= count else None

    page = await eventually(listing)
    return page if whole else page["messages"][0]
