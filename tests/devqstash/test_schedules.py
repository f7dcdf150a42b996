"""Cron schedules on the embedded server: the QStash schedule routes and the cron loop."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from qstash import Receiver
from qstash.errors import QStashError
from sqlalchemy import func, select
from starlette.responses import Response

from app.db import create_engine, session_factory
from app.devqstash.models import ACTIVE_STATES, EventState, QStashEvent, QStashMessage
from app.runtime.schedules import Cron
from tests.devqstash.support import CURRENT_KEY, NEXT_KEY, QStashServer, Received, eventually, running_qstash

EVERY_SECOND = "* * * * * *"  # six fields, seconds first: an extension of the embedded server


class ManualClock:
    """A clock the test moves by hand (unix seconds)."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


def ticks(requests: list[Received]) -> list[int]:
    return [int(request.headers["upstash-schedule-tick"]) for request in requests]


async def scheduled_messages(database_url: str, url: str, *, active: bool = False) -> int:
    """Messages the server has made for one destination (with `active`, those not yet delivered)."""
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            if active:
                query = select(func.count()).select_from(QStashMessage).where(QStashMessage.url == url)
                query = query.where(QStashMessage.state.in_(ACTIVE_STATES))
            else:
                query = select(func.count()).select_from(QStashEvent)
                query = query.where(QStashEvent.url == url, QStashEvent.state == EventState.CREATED)
            return await session.scalar(query) or 0
    finally:
        await engine.dispose()


async def wait_for_ticks(server: QStashServer, witness_id: str, count: int) -> None:
    """Wait until the cron loop has fired `count` more ticks of an every-second witness schedule:
    every schedule due at those ticks has been handled by then, whatever it did."""
    start = (await server.client.schedule.get(witness_id)).last_schedule_time or 0

    async def advanced() -> bool:
        return ((await server.client.schedule.get(witness_id)).last_schedule_time or 0) >= start + count * 1000

    await eventually(advanced)


async def test_the_official_client_creates_lists_gets_pauses_resumes_and_deletes_a_schedule(qstash: QStashServer):
    destination = "https://example.com/jobs/nightly?kind=full"
    schedule_id = await qstash.client.schedule.create(
        destination=destination,
        cron="CRON_TZ=Europe/Berlin 0 3 * * *",
        body='{"full": true}',
        content_type="application/json",
        method="PUT",
        headers={"X-Job": "nightly"},
        retries=2,
        retry_delay="1000 * retried",
        callback="https://example.com/cb",
        timeout="30s",
        delay="5s",
        label="nightly",
    )
    assert schedule_id.startswith("scd_")

    schedule = await qstash.client.schedule.get(schedule_id)
    assert (schedule.schedule_id, schedule.destination) == (schedule_id, destination)
    assert (schedule.cron, schedule.method) == ("CRON_TZ=Europe/Berlin 0 3 * * *", "PUT")
    assert schedule.body == '{"full": true}'
    assert schedule.headers == {"X-Job": ["nightly"], "Content-Type": ["application/json"]}
    assert (schedule.retries, schedule.retry_delay_expression) == (2, "1000 * retried")
    assert schedule.callback == "https://example.com/cb"
    assert (schedule.timeout, schedule.delay, schedule.label, schedule.paused) == (30, 5, "nightly", False)
    assert schedule.last_schedule_time is None
    expected = Cron.parse("CRON_TZ=Europe/Berlin 0 3 * * *").next_after(datetime.now(UTC))
    assert schedule.next_schedule_time == int(expected.timestamp() * 1000)
    assert datetime.fromtimestamp(schedule.next_schedule_time / 1000, ZoneInfo("Europe/Berlin")).hour == 3
    assert [s.schedule_id for s in await qstash.client.schedule.list()] == [schedule_id]

    await qstash.client.schedule.pause(schedule_id)
    paused = await qstash.client.schedule.get(schedule_id)
    assert paused.paused and paused.next_schedule_time is None
    await qstash.client.schedule.resume(schedule_id)
    assert not (await qstash.client.schedule.get(schedule_id)).paused

    await qstash.client.schedule.delete(schedule_id)
    assert await qstash.client.schedule.list() == []
    with pytest.raises(QStashError, match="404"):
        await qstash.client.schedule.get(schedule_id)
    for call in (qstash.client.schedule.delete, qstash.client.schedule.pause, qstash.client.schedule.resume):
        with pytest.raises(QStashError, match="404"):
            await call(schedule_id)


async def test_a_schedule_every_second_delivers_signed_messages_with_its_schedule_id(qstash: QStashServer, receivers):
    receiver = await receivers()
    url = receiver.url("/jobs/heartbeat")

    schedule_id = await qstash.client.schedule.create_json(
        destination=url, cron=EVERY_SECOND, body={"job": "heartbeat"}, headers={"X-Job": "heartbeat"}
    )

    requests = await receiver.wait_for(3, timeout=10)
    await qstash.client.schedule.delete(schedule_id)
    verifier = Receiver(current_signing_key=CURRENT_KEY, next_signing_key=NEXT_KEY)
    for request in requests[:3]:
        assert (request.method, request.url, request.json()) == ("POST", url, {"job": "heartbeat"})
        assert request.headers["upstash-schedule-id"] == schedule_id
        assert request.headers["x-job"] == "heartbeat"
        assert request.headers["content-type"] == "application/json"
        verifier.verify(signature=request.headers["upstash-signature"], body=request.body.decode(), url=url)
    assert len({request.headers["upstash-message-id"] for request in requests}) == len(requests)
    first, second, third = ticks(requests[:3])
    assert first < second < third  # one message per tick, each tick once
    schedule_after = await qstash.http.get("/v2/schedules")
    assert schedule_after.json() == []


async def test_upsert_by_schedule_id_replaces_the_schedule_without_duplicating_it(qstash: QStashServer, receivers):
    receiver = await receivers()
    first = await qstash.client.schedule.create(
        destination=receiver.url("/old"), cron="0 * * * *", body="old", schedule_id="report"
    )
    second = await qstash.client.schedule.create(
        destination=receiver.url("/new"), cron=EVERY_SECOND, body="new", schedule_id="report", label="v2"
    )

    assert first == second == "report"
    [schedule] = await qstash.client.schedule.list()
    assert (schedule.destination, schedule.cron, schedule.body, schedule.label) == (
        receiver.url("/new"),
        EVERY_SECOND,
        "new",
        "v2",
    )
    [request] = (await receiver.wait_for(1, timeout=5))[:1]
    assert (request.url, request.body) == (receiver.url("/new"), b"new")
    assert request.headers["upstash-schedule-id"] == "report"


async def test_upserting_the_same_cron_again_keeps_its_next_fire_time(database_url):
    clock = ManualClock()
    async with running_qstash(database_url, clock=clock) as server:
        create = server.client.schedule.create
        await create(destination="https://example.com/a", cron="0 9 * * 1", schedule_id="weekly")
        before = await server.client.schedule.get("weekly")
        clock.now += 3600  # a later upsert would compute another creation time
        await create(destination="https://example.com/b", cron="0 9 * * 1", schedule_id="weekly")
        after = await server.client.schedule.get("weekly")
    assert (after.created_at, after.next_schedule_time) == (before.created_at, before.next_schedule_time)
    assert after.destination == "https://example.com/b"


async def test_a_paused_schedule_does_not_fire_until_resumed(qstash: QStashServer, database_url, receivers):
    receiver, witness = await receivers(), await receivers()
    witness_id = await qstash.client.schedule.create(destination=witness.url("/w"), cron=EVERY_SECOND)
    destination = receiver.url("/p")
    schedule_id = await qstash.client.schedule.create(destination=destination, cron=EVERY_SECOND)
    await qstash.client.schedule.pause(schedule_id)
    made = await scheduled_messages(database_url, destination)  # a tick may have fired before the pause

    await wait_for_ticks(qstash, witness_id, 2)
    assert await scheduled_messages(database_url, destination) == made
    paused_at = len(receiver.requests)

    await qstash.client.schedule.resume(schedule_id)
    await receiver.wait_for(paused_at + 1, timeout=5)


async def test_a_deleted_schedule_stops_firing(qstash: QStashServer, database_url, receivers):
    receiver, witness = await receivers(), await receivers()
    witness_id = await qstash.client.schedule.create(destination=witness.url("/w"), cron=EVERY_SECOND)
    destination = receiver.url("/d")
    schedule_id = await qstash.client.schedule.create(destination=destination, cron=EVERY_SECOND)
    await receiver.wait_for(1, timeout=5)
    await qstash.client.schedule.delete(schedule_id)
    made = await scheduled_messages(database_url, destination)

    await wait_for_ticks(qstash, witness_id, 2)
    assert await scheduled_messages(database_url, destination) == made
    await eventually(lambda: _none_active(database_url, destination))  # those made before the delete arrive
    assert len(receiver.requests) == made


@pytest.mark.parametrize(
    ("cron", "error"),
    [
        (None, "Upstash-Cron header is required"),
        ("", "Upstash-Cron header is required"),
        ("* * *", "has 3 fields"),
        ("61 * * * *", "invalid"),
        ("0 0 30 2 *", "invalid"),
        ("CRON_TZ=Mars/Olympus 0 9 * * *", "unknown time zone 'Mars/Olympus'"),
    ],
)
async def test_a_missing_or_invalid_cron_is_refused_with_a_clear_400(qstash: QStashServer, cron, error):
    headers = {} if cron is None else {"Upstash-Cron": cron}
    response = await qstash.http.post("/v2/schedules/https://example.com/x", headers=headers)
    assert response.status_code == 400
    assert error in response.json()["error"]
    assert (await qstash.http.get("/v2/schedules")).json() == []


async def test_not_before_deduplication_and_bad_ids_are_refused_on_schedules(qstash: QStashServer):
    cases = [
        ({"Upstash-Not-Before": "1999999999"}, "use Upstash-Delay"),
        ({"Upstash-Deduplication-Id": "x"}, "every tick is a new message"),
        ({"Upstash-Schedule-Id": "a/b"}, "Upstash-Schedule-Id"),
    ]
    for extra, error in cases:
        response = await qstash.http.post(
            "/v2/schedules/https://example.com/x", headers={"Upstash-Cron": "0 * * * *", **extra}
        )
        assert response.status_code == 400 and error in response.json()["error"], extra
    unauthorized = await qstash.http.get("/v2/schedules", headers={"Authorization": "Bearer wrong"})
    assert unauthorized.status_code == 401


async def test_ticks_missed_while_stopped_fire_once_not_once_each(database_url, receivers):
    receiver = await receivers()
    clock = ManualClock()
    async with running_qstash(database_url, clock=clock) as server:
        await server.client.schedule.create(destination=receiver.url("/m"), cron="* * * * *", schedule_id="minutely")
        await server.devq.stop()
        clock.now += 10 * 60  # ten ticks pass while nothing runs
        await server.devq.start()

        [request] = await receiver.wait_for(1, timeout=5)
        schedule = await server.client.schedule.get("minutely")
        assert schedule.last_schedule_time == int(clock.now) // 60 * 60_000  # that pass is over
        assert await scheduled_messages(database_url, receiver.url("/m")) == 1
        assert ticks([request]) == [int(clock.now) // 60 * 60]  # the most recent tick only
        schedule = await server.client.schedule.get("minutely")
        assert schedule.last_schedule_time == int(clock.now) // 60 * 60_000
        assert schedule.next_schedule_time == (int(clock.now) // 60 + 1) * 60_000

        clock.now += 60
        await receiver.wait_for(2, timeout=5)
        assert ticks(receiver.requests) == [int(clock.now) // 60 * 60 - 60, int(clock.now) // 60 * 60]


async def test_two_servers_on_one_database_fire_each_tick_once(database_url, receivers):
    receiver = await receivers()
    async with running_qstash(database_url) as first, running_qstash(database_url):
        destination = receiver.url("/once")
        schedule_id = await first.client.schedule.create(destination=destination, cron=EVERY_SECOND)
        await receiver.wait_for(4, timeout=10)
        await first.client.schedule.delete(schedule_id)
        await eventually(lambda: _none_active(database_url, destination))
        made = await scheduled_messages(database_url, destination)
    assert len(receiver.requests) == made
    counts = Counter(ticks(receiver.requests))
    assert len(counts) >= 4
    assert set(counts.values()) == {1}, counts


async def test_a_failing_tick_is_retried_then_dead_lettered_with_its_schedule_id(qstash: QStashServer, receivers):
    receiver = await receivers(lambda _: Response("down", status_code=500))
    schedule_id = await qstash.client.schedule.create(
        destination=receiver.url("/fails"), cron=EVERY_SECOND, retries=1, schedule_id="flaky-job"
    )
    await receiver.wait_for(2, timeout=5)
    await qstash.client.schedule.pause(schedule_id)

    async def dead_lettered():
        return (await qstash.client.dlq.list(filter={"schedule_id": "flaky-job"})).messages

    [dead, *_] = await eventually(dead_lettered)
    assert (dead.url, dead.schedule_id, dead.response_status) == (receiver.url("/fails"), "flaky-job", 500)
    first_tick = [r for r in receiver.requests if r.headers["upstash-message-id"] == dead.message_id]
    assert [r.headers["upstash-retried"] for r in first_tick] == ["0", "1"]


async def _none_active(database_url: str, url: str) -> bool:
    return await scheduled_messages(database_url, url, active=True) == 0
