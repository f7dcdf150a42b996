"""Publishing through the official client and raw HTTP: what the destination receives."""

from __future__ import annotations

import httpx
from qstash import Receiver

from tests.devqstash.support import CURRENT_KEY, NEXT_KEY, TOKEN, QStashServer


async def test_official_client_publish_json_is_delivered_signed_with_forwarded_headers(qstash: QStashServer, receivers):
    receiver = await receivers()
    url = receiver.url("/hooks/order?x=1&y=two")

    published = await qstash.client.message.publish_json(
        url=url, body={"hello": "world"}, headers={"X-Trace": "abc", "Authorization": "Bearer downstream"}
    )

    [request] = await receiver.wait_for(1)
    assert request.method == "POST"
    assert request.url == url
    assert request.json() == {"hello": "world"}
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-trace"] == "abc"
    assert request.headers["authorization"] == "Bearer downstream"
    assert request.headers["upstash-message-id"] == published.message_id
    assert request.headers["upstash-retried"] == "0"
    assert request.headers["user-agent"] == "Upstash-QStash"
    assert request.headers["upstash-caller-ip"] == "127.0.0.1"
    verifier = Receiver(current_signing_key=CURRENT_KEY, next_signing_key=NEXT_KEY)
    verifier.verify(signature=request.headers["upstash-signature"], body=request.body.decode(), url=url)


async def test_method_and_raw_body_are_delivered_unchanged(qstash: QStashServer, receivers):
    receiver = await receivers()
    body = b"\x00\x01 not utf-8 \xff"

    response = await qstash.publish(
        receiver.url("/put"), body, Upstash_Method="PUT", Content_Type="application/octet-stream"
    )

    assert response.status_code == 201
    [request] = await receiver.wait_for(1)
    assert (request.method, request.body) == ("PUT", body)
    assert request.headers["content-type"] == "application/octet-stream"


async def test_hop_by_hop_headers_are_dropped_and_qstash_headers_win_over_forwarded_copies(
    qstash: QStashServer, receivers
):
    receiver = await receivers()
    url = receiver.url("/workflows/demo")
    stale = {
        "Upstash-Forward-Host": "stale.example",
        "Upstash-Forward-Content-Length": "999",
        "Upstash-Forward-Connection": "close",
        "Upstash-Forward-Accept-Encoding": "br",
        "Upstash-Forward-Transfer-Encoding": "chunked",
        "Upstash-Forward-Keep-Alive": "timeout=5",
        "Upstash-Forward-Proxy-Authorization": "Basic eA==",
        "Upstash-Forward-Upstash-Signature": "stale-signature",
        "Upstash-Forward-Upstash-Message-Id": "msg_stale",
        "Upstash-Forward-Upstash-Retried": "7",
        "Upstash-Forward-Upstash-Caller-Ip": "10.9.9.9",
        "Upstash-Forward-User-Agent": "upstash-workflow-sdk",
        "Upstash-Forward-Upstash-Workflow-Sdk-Version": "1",
        "Upstash-Workflow-RunId": "wfr_control_header_not_forwarded",
    }

    response = await qstash.http.post(f"/v2/publish/{url}", content=b'{"step":1}', headers=stale)

    [request] = await receiver.wait_for(1)
    message_id = response.json()["messageId"]
    assert request.headers["host"] == url.split("/")[2]
    assert request.headers["content-length"] == str(len(b'{"step":1}'))
    assert request.headers.get("connection") != "close"
    assert "br" not in request.headers.get("accept-encoding", "")
    assert "transfer-encoding" not in request.headers
    assert "keep-alive" not in request.headers
    assert "proxy-authorization" not in request.headers
    assert request.headers["upstash-message-id"] == message_id
    assert request.headers["upstash-retried"] == "0"
    assert request.headers["upstash-caller-ip"] == "127.0.0.1"
    assert request.headers["user-agent"] == "Upstash-QStash"
    assert request.headers["upstash-workflow-sdk-version"] == "1"
    assert "upstash-workflow-runid" not in request.headers
    Receiver(current_signing_key=CURRENT_KEY, next_signing_key=NEXT_KEY).verify(
        signature=request.headers["upstash-signature"], body=request.body.decode(), url=url
    )


async def test_requests_without_the_right_token_get_401_and_store_nothing(qstash: QStashServer, receivers):
    receiver = await receivers()
    attempts = [({}, {}), ({"Authorization": "Bearer wrong"}, {}), ({}, {"qstash_token": "wrong"})]
    async with httpx.AsyncClient(base_url=qstash.base_url) as anonymous:
        for headers, params in attempts:
            response = await anonymous.post(f"/v2/publish/{receiver.url('/x')}", headers=headers, params=params)
            listing = await anonymous.get("/v2/dlq", headers=headers, params=params)

            assert response.status_code == 401, (headers, params)
            assert "token" in response.json()["error"]
            assert listing.status_code == 401
    assert await qstash.devq.cancel(None) == 0


async def test_token_in_query_string_is_accepted_and_not_forwarded_to_the_destination(
    qstash: QStashServer, receivers
):
    receiver = await receivers()
    async with httpx.AsyncClient() as anonymous:
        response = await anonymous.post(
            f"{qstash.base_url}/v2/publish/{receiver.url('/q')}?keep=1&qstash_token={TOKEN}", content=b"hi"
        )

    assert response.status_code == 201
    [request] = await receiver.wait_for(1)
    assert request.url == receiver.url("/q?keep=1")


async def test_invalid_publish_requests_are_refused_with_a_clear_error(qstash: QStashServer, receivers):
    receiver = await receivers()
    for destination in ("my-url-group", "ftp://example.com/file"):
        response = await qstash.publish(destination, b"x")
        assert response.status_code == 400
        assert "URL groups" in response.json()["error"]
    cases = {
        "Upstash-Delay": "soon",
        "Upstash-Retries": "-1",
        "Upstash-Method": "BREW",
        "Upstash-Retry-Delay": "__import__('os')",
        "Upstash-Callback-Delay": "later",
    }
    for name, value in cases.items():
        callback = {"Upstash-Callback": receiver.url("/cb")} if name.startswith("Upstash-Callback") else {}
        response = await qstash.http.post(
            f"/v2/publish/{receiver.url('/x')}", content=b"x", headers={name: value, **callback}
        )
        assert response.status_code == 400, name
        assert "error" in response.json()
    assert receiver.requests == []


async def test_signing_keys_are_served_and_rotation_is_refused(qstash: QStashServer):
    keys = await qstash.client.signing_key.get()
    rotate = await qstash.http.post("/v2/keys/rotate")

    assert (keys.current, keys.next) == (CURRENT_KEY, NEXT_KEY)
    assert rotate.status_code == 400
    assert "not supported" in rotate.json()["error"]
