"""Exchange-rate refresh against a local rates server, the offline development source, and the
analytics refresh as seen through `GET /ops/analytics`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.rates.models import ExchangeRate, RateFetch
from app.rates.router import DEV_RATES
from tests.scheduled_jobs.support import JOB_SETTINGS, OPS, days_ago, post_tick, rows, seed
from tests.support.live import serve
from tests.support.service import live_service

TICK = datetime(2026, 6, 1, 6, 15, tzinfo=UTC)
GOOD = {
    "base": "USD",
    "rates": {"EUR": 0.9, "GBP": 0.8, "INR": 80.0, "TRY": 30.0, "THB": 35.0, "AED": 3.67, "JPY": 150},
}


class RatesSource:
    """Answers the queued (status, body) pairs in turn, the last one from then on."""

    def __init__(self, *answers: tuple[int, str]) -> None:
        self.answers = list(answers)
        self.requests = 0

    def app(self) -> Starlette:
        async def latest(_: Request) -> Response:
            self.requests += 1
            status, body = self.answers[0] if len(self.answers) == 1 else self.answers.pop(0)
            return Response(body, status_code=status, media_type="application/json")

        return Starlette(routes=[Route("/latest", latest)])


async def test_rates_answered_500_then_200_are_stored_once_and_garbage_keeps_them_with_the_reason(database_url):
    source = RatesSource((500, "overloaded"), (200, json.dumps(GOOD)))
    async with serve(lambda _: source.app()) as (source_url, _):
        async with live_service(database_url, None, rates_url=f"{source_url}/latest", **JOB_SETTINGS) as svc:
            sessions = svc.services.sessions
            first = await post_tick(svc.base_url, "exchange-rate-refresh", TICK)
            assert (await svc.wait(first.json()["run_id"])).result["status"] == "ok"
            assert source.requests == 2
            [fetch] = await rows(sessions, select(RateFetch))
            stored = {r.currency: r.rate for r in await rows(sessions, select(ExchangeRate))}
            assert stored == {k: v for k, v in GOOD["rates"].items() if k != "JPY"}

            source.answers = [(200, "<html>rate limited</html>")]
            second = await post_tick(svc.base_url, "exchange-rate-refresh", TICK + timedelta(days=1))
            assert (await svc.wait(second.json()["run_id"])).result["status"] == "failed"

            async with httpx.AsyncClient(base_url=svc.base_url, headers=OPS) as client:
                latest = (await client.get("/rates")).json()
                quote = (await client.get("/rates/quote", params={"amount": 100, "from": "usd", "to": "EUR"})).json()
                unknown = await client.get("/rates/quote", params={"amount": 100, "from": "USD", "to": "XYZ"})
        assert latest["rates"] == stored and latest["fetched_at"] == fetch.fetched_at.isoformat().replace("+00:00", "Z")
        assert "not JSON" in latest["last_failure"]
        assert quote["converted"] == 90.0
        assert unknown.status_code == 404 and "no rate for XYZ" in unknown.json()["detail"]
        fetches = await rows(sessions, select(RateFetch).order_by(RateFetch.id))
        assert [f.status for f in fetches] == ["ok", "failed"]


async def test_analytics_reflect_new_cases_after_a_refresh_and_rates_come_from_the_offline_source(database_url):
    async with live_service(database_url, None, **JOB_SETTINGS) as svc:
        sessions = svc.services.sessions
        earlier = days_ago(2)
        await seed(sessions, prefix="old", cases=3, created=earlier, documents_per_case=2, status="analyzed")
        first = await post_tick(svc.base_url, "analytics-refresh", TICK)
        await svc.wait(first.json()["run_id"])
        async with httpx.AsyncClient(base_url=svc.base_url, headers=OPS) as client:
            before = (await client.get("/ops/analytics")).json()["days"]
            await seed(sessions, prefix="new", cases=2, created=datetime.now(UTC), documents_per_case=1)
            stale = (await client.get("/ops/analytics")).json()["days"]
            second = await post_tick(svc.base_url, "analytics-refresh", TICK + timedelta(hours=1))
            await svc.wait(second.json()["run_id"])
            after = (await client.get("/ops/analytics")).json()["days"]
            since = (await client.get("/ops/analytics", params={"since": datetime.now(UTC).date().isoformat()})).json()
            refused = await client.get("/ops/analytics", headers={"Authorization": "Bearer nope"})
            rates = await post_tick(svc.base_url, "exchange-rate-refresh", TICK)
            await svc.wait(rates.json()["run_id"])
            offline = (await client.get("/rates")).json()
        old_day = {"day": earlier.date().isoformat(), "cases": 3, "documents": {"analyzed": 6}, "forwardings": {}}
        new_day = {
            "day": datetime.now(UTC).date().isoformat(),
            "cases": 2,
            "documents": {"uploaded": 2},
            "forwardings": {},
        }
        assert before == stale == [old_day]
        assert after == [old_day, new_day] and since["days"] == [new_day]
        assert refused.status_code == 401
        assert offline["rates"] == DEV_RATES
